"""Reference outputs for the Rust diffusion adapters, recorded from diffusers (PyTorch).

usage: diffusion_goldens.py SOURCES_TINY_SD OUT_DIR

1. `schedulers.safetensors` + `schedulers.json`: for each scheduler class × config (SD 1.5, SD 2.x
   v-prediction, and each timestep spacing), a fixed initial sample, a recorded sequence of model
   outputs (seeded random tensors standing in for a UNet), every noise tensor the scheduler drew,
   and what `scale_model_input` and `step` returned at each step.
3. `terrain.safetensors` + `terrain.json` and `terrain-export/`: the terrain model exported from
   `adaptive-terrain-diffusion==0.4.2` (the wheel is fetched with pip), and heightmaps from the
   package's own `TerrainGenerator` with the noise it drew.
2. `pipeline.safetensors` + `pipeline.json`: diffusers' StableDiffusionPipeline and
   StableDiffusionImg2ImgPipeline on the tiny-sd weights (PyTorch), with every `randn_tensor` draw
   recorded so the Rust pipeline can replay them: the decoded images (`output_type="np"`, in
   [0, 1]) for DDIM and Euler, with and without guidance, text-to-image and img2img.
"""

import json
import shutil
import zlib
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler)

# The hub's SD 1.5 scheduler_config.json (diffusers 0.17 era): no `timestep_spacing` key, so each
# class falls back to its own default, which is the point of testing it as is.
SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False,
        "prediction_type": "epsilon", "trained_betas": None}
SD2 = dict(SD15, prediction_type="v_prediction")
CLASSES = {"ddim": DDIMScheduler, "pndm": PNDMScheduler, "euler": EulerDiscreteScheduler,
           "euler-ancestral": EulerAncestralDiscreteScheduler, "dpm-solver-multistep": DPMSolverMultistepScheduler}


def scheduler_cases():
    cases = []
    for kind in CLASSES:
        cases.append((f"{kind}/sd15", kind, "sd15", SD15, 50))
        cases.append((f"{kind}/sd2", kind, "sd2", SD2, 50))
        for spacing in ["leading", "trailing", "linspace"]:
            cases.append((f"{kind}/sd15-{spacing}", kind, "sd15", dict(SD15, timestep_spacing=spacing), 50))
        cases.append((f"{kind}/sd15-10-steps", kind, "sd15", SD15, 10))
    return cases


def record_schedulers(out):
    tensors, meta = {}, []
    for name, kind, base, config, steps in scheduler_cases():
        sched = CLASSES[kind].from_config(config)
        sched.set_timesteps(steps)
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        shape = (1, 4, 8, 8)
        sample = torch.randn(shape, generator=gen) * sched.init_noise_sigma
        init = sample.clone()
        step_gen = torch.Generator().manual_seed(1234)
        replay = torch.Generator().manual_seed(1234)
        outs, scaled, prevs, noises = [], [], [], []
        for i, t in enumerate(sched.timesteps):
            model_in = sched.scale_model_input(sample, t)
            # A stand-in denoiser that keeps the samples in a realistic range: the exact one for
            # data ~ N(0, 1) (ε = √(1-ᾱ)·x on the variance-preserving input, v = 0), plus noise so
            # every element of the update is exercised. Independent random outputs would make the
            # samples grow to |x| ≈ 40, where 1e-5 is below one float32 ulp.
            if hasattr(sched, "sigmas") and kind.startswith("euler"):
                alpha = 1.0 / (1.0 + float(sched.sigmas[i]) ** 2)
            else:
                alpha = float(sched.alphas_cumprod[int(t)])
            scale = (1.0 - alpha) ** 0.5 if config["prediction_type"] == "epsilon" else 0.0
            eps = (scale * model_in + 0.5 * torch.randn(shape, generator=gen)).to(torch.float32)
            kwargs = {"generator": step_gen} if kind == "euler-ancestral" else {}
            before = step_gen.get_state()
            sample = sched.step(eps, t, sample, **kwargs).prev_sample
            if kind == "euler-ancestral":
                noises.append(torch.randn(shape, generator=replay))
                assert torch.equal(step_gen.get_state(), replay.get_state())
            scaled.append(model_in)
            outs.append(eps)
            prevs.append(sample)
        tensors[f"{name}/init"] = init.contiguous()
        tensors[f"{name}/timesteps"] = sched.timesteps.to(torch.float32).contiguous()
        tensors[f"{name}/model_output"] = torch.stack(outs).contiguous()
        tensors[f"{name}/scaled"] = torch.stack(scaled).contiguous()
        tensors[f"{name}/prev"] = torch.stack(prevs).contiguous()
        if noises:
            tensors[f"{name}/noise"] = torch.stack(noises).contiguous()
        resolved = sched.config.timestep_spacing
        meta.append({"name": name, "kind": kind, "base": base, "steps": steps,
                     "timestep_spacing": config.get("timestep_spacing"), "resolved_spacing": resolved,
                     "init_noise_sigma": float(sched.init_noise_sigma)})
    save_file(tensors, str(out / "schedulers.safetensors"))
    (out / "schedulers.json").write_text(json.dumps({"diffusers": diffusers.__version__, "cases": meta}, indent=1))


class Recorder:
    """Replaces diffusers' `randn_tensor` and keeps every tensor it returned, in order."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.draws = []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        t = torch.randn(shape, generator=self.gen, dtype=torch.float32)
        self.draws.append(t.clone())
        return t.to(dtype) if dtype is not None else t


def record_pipeline(src, out):
    from diffusers import AutoencoderKL, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion as p_t2i
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as p_i2i
    import diffusers.schedulers.scheduling_euler_discrete as s_euler
    import diffusers.schedulers.scheduling_ddim as s_ddim
    import diffusers.models.autoencoders.vae as vae_mod
    import diffusers.utils.torch_utils as tu

    text = CLIPTextModel.from_pretrained(src / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(src / "unet").eval()
    vae = AutoencoderKL.from_pretrained(src / "vae").eval()
    tok = AutoTokenizer.from_pretrained(src / "tokenizer")
    with open(src / "scheduler" / "scheduler_config.json") as f:
        sconfig = json.load(f)
    components = dict(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, safety_checker=None,
                      feature_extractor=None, requires_safety_checker=False)
    cases = []
    tensors = {}
    init = np.linspace(0, 1, 32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
    init = (np.sin(init * 20.0) * 0.5 + 0.5)
    init_u8 = (init * 255).round().astype(np.uint8)
    tensors["init_image"] = torch.from_numpy(init_u8.copy())
    from PIL import Image
    init_pil = Image.fromarray(init_u8)
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as s_euler_a
    combos = [(kind, guidance, mode, "epsilon") for kind in ["ddim", "euler"] for guidance in [1.0, 7.5]
              for mode in ["txt2img", "img2img"]]
    # v-prediction (SD 2.x) through the same weights, and the other samplers (euler-ancestral
    # draws noise every step, so its order of draws is checked too).
    combos += [("ddim", 7.5, "txt2img", "v_prediction"), ("euler", 7.5, "txt2img", "v_prediction"),
               ("pndm", 7.5, "txt2img", "epsilon"), ("euler-ancestral", 7.5, "txt2img", "epsilon"),
               ("dpm-solver-multistep", 7.5, "txt2img", "epsilon")]
    patched = (p_t2i, p_i2i, vae_mod, s_euler, s_euler_a, s_ddim, tu)
    originals = {mod: mod.randn_tensor for mod in patched if hasattr(mod, "randn_tensor")}
    for i, (kind, guidance, mode, prediction) in enumerate(combos):
        cls = CLASSES[kind]
        name = f"{mode}/{kind}/g{guidance}" + ("" if prediction == "epsilon" else "/v")
        rec = Recorder(100 + i)
        for mod in originals:
            mod.randn_tensor = rec
        sched = cls.from_config(sconfig, prediction_type=prediction)
        prompt, negative = "a photo of a cat sitting on a red sofa", "dim lighting"
        steps = 6
        with torch.no_grad():
            if mode == "txt2img":
                pipe = StableDiffusionPipeline(scheduler=sched, **components)
                image = pipe(prompt, negative_prompt=negative, height=32, width=32, num_inference_steps=steps,
                             guidance_scale=guidance, output_type="np").images
                strength = None
            else:
                pipe = StableDiffusionImg2ImgPipeline(scheduler=sched, **components)
                strength = 0.6
                image = pipe(prompt, image=init_pil, negative_prompt=negative, strength=strength,
                             num_inference_steps=steps, guidance_scale=guidance, output_type="np").images
        tensors[f"{name}/image"] = torch.from_numpy(np.ascontiguousarray(image))
        for k, d in enumerate(rec.draws):
            tensors[f"{name}/noise/{k}"] = d.contiguous()
        cases.append({"name": name, "scheduler": kind, "guidance_scale": guidance, "mode": mode,
                      "prediction_type": prediction,
                      "prompt": prompt, "negative_prompt": negative, "steps": steps, "strength": strength,
                      "width": 32, "height": 32, "draws": len(rec.draws)})
    # Later recordings (the schedulers') draw through their generators again.
    for mod, original in originals.items():
        mod.randn_tensor = original
    save_file(tensors, str(out / "pipeline.safetensors"))
    (out / "pipeline.json").write_text(json.dumps({"diffusers": diffusers.__version__, "cases": cases}, indent=1))


TERRAIN_SOURCE = "pypi:adaptive-terrain-diffusion==0.4.2#terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx"


def record_terrain(out):
    """The terrain export (as `cargo xtask export terrain` makes it) and the package's own
    `TerrainGenerator` output for a fixed seed, with the noise it drew."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "export"))
    import main as export_main

    export_dir = out / "terrain-export" / "terrain" / "0.4.2"
    export_main.export({"arch": "terrain-diffusion", "source": TERRAIN_SOURCE, "source_uri": TERRAIN_SOURCE,
                        "out": str(export_dir), "id": "terrain", "version": "0.4.2"})
    onnx_path, _ = export_main.pypi(TERRAIN_SOURCE)
    wheel_root = Path(onnx_path).parents[2]
    sys.path.insert(0, str(wheel_root))
    from terrain_diffusion.generator import TerrainGenerator

    gen = TerrainGenerator(model=onnx_path, device="cpu")
    seed, levels = 42, [50, 80]
    heights = gen.generate(len(levels), shape=128, difficulty=levels, seed=seed)
    # With explicit levels the generator's only draw is the initial noise (one batch of 16 or
    # fewer), so the same generator state reproduces it.
    noise = np.random.default_rng(seed).standard_normal((len(levels), 1, 128, 128), dtype=np.float32)
    labels = ((np.asarray(levels) - 1) / 99).astype(np.float32)
    again = gen._from_model_space(gen._denoise(noise * np.float32(gen.sigma_max), np.full(2, gen.sigma_max, np.float32),
                                               labels), zero_floor=True)
    assert np.array_equal(again, heights), "the recorded noise does not reproduce the generator"
    tensors = {"noise": torch.from_numpy(noise), "heights": torch.from_numpy(np.ascontiguousarray(heights))}
    save_file(tensors, str(out / "terrain.safetensors"))
    stats = [{"level": lv, "min": float(h.min()), "max": float(h.max()), "mean": float(h.mean())}
             for lv, h in zip(levels, heights)]
    (out / "terrain.json").write_text(json.dumps({"package": "adaptive-terrain-diffusion==0.4.2", "seed": seed,
                                                  "levels": levels, "stats": stats}, indent=1))


def timestep_variant(export, out):
    """A copy of the tiny-sd export whose UNet takes the timestep as an int64 scalar (rank 0), as
    some exporters write it: the pipeline must read the dtype and rank from the session."""
    import onnx
    from onnx import TensorProto, helper

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(export, out)
    path = out / "unet" / "model.onnx"
    model = onnx.load(str(path))
    graph = model.graph
    old = next(i for i in graph.input if i.name == "timestep")
    graph.input.remove(old)
    graph.input.append(helper.make_tensor_value_info("timestep", TensorProto.INT64, []))
    for node in graph.node:
        node.input[:] = ["timestep_as_batch" if n == "timestep" else n for n in node.input]
    nodes = [
        helper.make_node("Cast", ["timestep"], ["timestep_f"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["sample"], ["sample_shape"], start=0, end=1),
        helper.make_node("Expand", ["timestep_f", "sample_shape"], ["timestep_as_batch"]),
    ]
    for n in reversed(nodes):
        graph.node.insert(0, n)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if "--schedulers-only" not in sys.argv:
        record_pipeline(src, out)
    record_schedulers(out)
    record_terrain(out)
    timestep_variant(src.parent.parent / "exports" / "tiny-sd" / "0.1.0", out / "tiny-sd-int64-timestep")


if __name__ == "__main__":
    main()
