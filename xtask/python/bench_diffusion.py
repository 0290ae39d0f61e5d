"""The Python side of `cargo bench -p modelmux-adapters --bench diffusion`: diffusers'
OnnxStableDiffusionPipeline (onnxruntime) on the same ONNX export, and diffusers' scheduler
`step` times; prints one JSON object.

usage: bench_diffusion.py EXPORT_DIR --steps N --runs R --width W --height H --latent-size S --threads T
"""

import argparse
import json
import time

import numpy as np
import torch

torch.set_num_threads(1)

from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       EulerDiscreteScheduler, OnnxRuntimeModel, OnnxStableDiffusionPipeline, PNDMScheduler)
from transformers import AutoTokenizer  # noqa: E402

SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False,
        "prediction_type": "epsilon"}
CLASSES = {"ddim": DDIMScheduler, "pndm": PNDMScheduler, "euler": EulerDiscreteScheduler,
           "euler-ancestral": EulerAncestralDiscreteScheduler, "dpm-solver-multistep": DPMSolverMultistepScheduler}


class Int64TextEncoder(OnnxRuntimeModel):
    """The ONNX pipeline feeds int32 ids; this project's text encoder takes int64 (CONTRACTS.md)."""

    def __call__(self, **kwargs):
        kwargs = {k: v.astype(np.int64) if k == "input_ids" else v for k, v in kwargs.items()}
        return super().__call__(**kwargs)


def pipeline_time(export, steps, runs, width, height, threads):
    import onnxruntime as ort

    def load(part, cls=OnnxRuntimeModel):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        return cls(cls.load_model(f"{export}/{part}/model.onnx", sess_options=options))

    with open(f"{export}/scheduler/scheduler_config.json") as f:
        scheduler = PNDMScheduler.from_config(json.load(f))
    pipe = OnnxStableDiffusionPipeline(
        vae_encoder=load("vae_encoder"), vae_decoder=load("vae_decoder"),
        text_encoder=load("text_encoder", Int64TextEncoder), tokenizer=AutoTokenizer.from_pretrained(f"{export}/tokenizer"),
        unet=load("unet"), scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        pipe("a photo of a cat sitting on a red sofa", negative_prompt="dim lighting", num_inference_steps=steps,
             guidance_scale=7.5, width=width, height=height, generator=np.random.RandomState(i))
        if i > 0:  # the first run warms up
            times.append(time.perf_counter() - started)
    raw = []
    feeds = {"sample": np.zeros((2, 4, 16, 16), np.float32), "timestep": np.full(2, 500.0, np.float32),
             "encoder_hidden_states": np.zeros((2, 77, 32), np.float32)}
    for i in range(steps + 1):
        started = time.perf_counter()
        pipe.unet(**feeds)
        if i > 0:
            raw.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2], sorted(raw)[len(raw) // 2]


def step_times(size, steps=50):
    out = {}
    for name, cls in CLASSES.items():
        sched = cls.from_config(SD15)
        sched.set_timesteps(steps)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 4, size, size, generator=gen)
        eps = torch.randn(1, 4, size, size, generator=gen)
        per_step = []
        for t in sched.timesteps:
            started = time.perf_counter()
            sched.scale_model_input(x, t)
            kwargs = {"generator": gen} if name == "euler-ancestral" else {}
            x = sched.step(eps, t, x, **kwargs).prev_sample
            per_step.append(time.perf_counter() - started)
        out[name] = sorted(per_step)[len(per_step) // 2] * 1e6
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("export")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--latent-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    pipeline_s, unet_s = pipeline_time(a.export, a.steps, a.runs, a.width, a.height, a.threads)
    result = {"pipeline_s": pipeline_s, "unet_call_s": unet_s, "step_us": step_times(a.latent_size)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
