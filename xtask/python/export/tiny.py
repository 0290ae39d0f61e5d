"""Seeded tiny random-weight models built from real architecture configs, written as source folders.

Each builder writes a folder in the layout the real checkpoint has on the Hugging Face hub
(`config.json` + `model.safetensors` + tokenizer files, or diffusers' subfolders), so the
exporter reads a tiny model exactly as it reads a real one. Tokenizers are trained here with
`tokenizers` on a fixed corpus: nothing is downloaded.
"""

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

CORPUS = [
    "a photo of a cat sitting on a red sofa",
    "a painting of a lighthouse by the sea at dusk",
    "the quick brown fox jumps over the lazy dog",
    "an astronaut riding a horse on the moon",
    "a close-up photo of a bowl of ramen with chopsticks",
    "a wide-angle photo of mountains covered in snow",
    "a sketch of an old city street with people walking",
    "a 3d render of a glass teapot on a wooden table",
    "bright lighting in a white kitchen with plants",
    "dim lighting in a jazz bar full of smoke",
    "translate english to german: the house is wonderful",
    "summarize: the model manager loads models lazily and evicts idle ones",
    "The cat sat on the mat. The dog barked at the mailman!",
    "Numbers like 1234 and 56.78 appear in text, too; so do symbols: #, @, %.",
]


def corpus():
    # Repeated with variations so the trainers see every merge often enough.
    for i in range(20):
        for line in CORPUS:
            yield line if i % 2 == 0 else line.upper() if i % 5 == 0 else line.capitalize()


def wordpiece(vocab_size=512):
    """A BERT-style uncased WordPiece tokenizer: [CLS] … [SEP], [PAD] = 0."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok, {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}


def byte_bpe(vocab_size=384, bos=None, eos="<|endoftext|>", lowercase=False):
    """A byte-level BPE (GPT-2 / CLIP style). With `bos`, a post-processor adds BOS … EOS."""
    special = [t for t in [eos, bos] if t]
    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))]
        )
    specials = {"eos_token": eos, "unk_token": eos, "pad_token": eos}
    if bos:
        specials["bos_token"] = bos
    else:
        specials["bos_token"] = eos
    return tok, specials


def save_tokenizer(tok, specials, out, max_length):
    from transformers import PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **specials)
    fast.save_pretrained(str(out))
    return fast


def save_model(model, out):
    model.save_pretrained(str(out), safe_serialization=True)


def tiny_bert(out):
    from transformers import BertConfig, BertModel

    tok, specials = wordpiece()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, pad_token_id=0)
    save_model(BertModel(cfg), out)
    save_tokenizer(tok, specials, out, 128)


def tiny_bert_classifier(out):
    """BertForSequenceClassification with two labels (a cross-encoder / sentiment head)."""
    from transformers import BertConfig, BertForSequenceClassification

    tok, specials = wordpiece()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, pad_token_id=0,
                     num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    save_model(BertForSequenceClassification(cfg), out)
    save_tokenizer(tok, specials, out, 128)


def tiny_gpt2(out):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok, specials = byte_bpe()
    eos = tok.token_to_id("<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=128, n_embd=32, n_layer=2, n_head=4, initializer_range=0.3,
                     bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    save_model(GPT2LMHeadModel(cfg), out)
    save_tokenizer(tok, specials, out, 128)


def clip_tokenizer():
    return byte_bpe(bos="<|startoftext|>", eos="<|endoftext|>", lowercase=True)


def tiny_clip(out):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok, specials = clip_tokenizer()
    torch.manual_seed(0)
    text = dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                bos_token_id=tok.token_to_id("<|startoftext|>"), eos_token_id=tok.token_to_id("<|endoftext|>"),
                pad_token_id=tok.token_to_id("<|endoftext|>"))
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  image_size=30, patch_size=6, projection_dim=32)
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    save_model(CLIPModel(cfg), out)
    save_tokenizer(tok, specials, out, 77)
    CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}).save_pretrained(str(out))


def tiny_sd(out):
    """Stable Diffusion 1.5's component classes and scheduler config, with tiny widths.

    The VAE has two blocks, so latents are 1/2 of the image size (SD 1.5: 1/8); the manifest
    records the factor.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out = Path(out)
    tok, specials = clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32,
    )
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=tok.token_to_id("<|startoftext|>"),
        eos_token_id=tok.token_to_id("<|endoftext|>"), pad_token_id=tok.token_to_id("<|endoftext|>")))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
                              timestep_spacing="leading", prediction_type="epsilon")
    unet.save_pretrained(str(out / "unet"))
    vae.save_pretrained(str(out / "vae"))
    text.save_pretrained(str(out / "text_encoder"))
    scheduler.save_pretrained(str(out / "scheduler"))
    save_tokenizer(tok, specials, out / "tokenizer", 77)
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2) + "\n")


def tiny_aesthetic(out, input_dim=32):
    """The LAION aesthetic predictor's MLP over a tiny CLIP's 32-dim image embedding."""
    from mlp import AestheticMlp

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "mlp-head", "input_dim": input_dim, "hidden_dims": [1024, 128, 64, 16], "output_dim": 1}
    torch.manual_seed(0)
    model = AestheticMlp(config)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def tiny_t5(out):
    from transformers import T5Config, T5ForConditionalGeneration

    tok, specials = wordpiece()
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                   num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16,
                   pad_token_id=0, eos_token_id=tok.token_to_id("[SEP]"), decoder_start_token_id=0)
    save_model(T5ForConditionalGeneration(cfg), out)
    save_tokenizer(tok, specials, out, 128)


def tiny_blip(out):
    """BLIP captioning with BERT-style WordPiece and `[DEC]` as the decoder's BOS (as in BLIP)."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    tok, specials = wordpiece()
    tok.add_special_tokens(["[DEC]"])
    torch.manual_seed(0)
    text = dict(vocab_size=tok.get_vocab_size(), hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64, initializer_range=0.3,
                bos_token_id=tok.token_to_id("[DEC]"), sep_token_id=tok.token_to_id("[SEP]"),
                eos_token_id=tok.token_to_id("[SEP]"), pad_token_id=tok.token_to_id("[PAD]"))
    # BLIP's vision default initializer_range is 1e-10, which makes a random tower's output constant.
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=30,
                  patch_size=6, initializer_range=0.3)
    save_model(BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision)), out)
    save_tokenizer(tok, {**specials, "bos_token": "[DEC]"}, out, 64)
    BlipImageProcessor(size={"height": 30, "width": 30}).save_pretrained(str(out))


def tiny_align(out):
    """ALIGN: a BERT text tower and an EfficientNet vision tower scaled down (width 0.25)."""
    from transformers import AlignConfig, AlignModel, EfficientNetImageProcessor

    tok, specials = wordpiece()
    torch.manual_seed(0)
    # The text projection must land in the vision tower's pooled width (80 at width 0.25).
    cfg = AlignConfig(
        text_config=dict(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64),
        # A random EfficientNet's output vanishes (std 0.02: ~1e-28) or explodes (0.5: ~1e4);
        # 0.4 gives embeddings of order 1, so the tolerance means something.
        vision_config=dict(image_size=32, width_coefficient=0.25, depth_coefficient=0.25, num_channels=3,
                           initializer_range=0.4),
        projection_dim=80)
    save_model(AlignModel(cfg), out)
    save_tokenizer(tok, specials, out, 64)
    EfficientNetImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(out))


def tiny_flava(out):
    """FLAVA: text, image and multimodal encoders (the codebook is not exported)."""
    from transformers import FlavaConfig, FlavaImageProcessor, FlavaModel

    tok, specials = wordpiece()
    torch.manual_seed(0)
    layer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    cfg = FlavaConfig(
        text_config=dict(vocab_size=tok.get_vocab_size(), max_position_embeddings=64, **layer),
        image_config=dict(image_size=30, patch_size=6, **layer),
        multimodal_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64),
        image_codebook_config=dict(hidden_size=32, num_groups=1, num_blocks_per_group=1, vocab_size=64),
        projection_dim=32, hidden_size=32)
    save_model(FlavaModel(cfg), out)
    save_tokenizer(tok, specials, out, 64)
    FlavaImageProcessor(size={"height": 30, "width": 30}, crop_size={"height": 30, "width": 30}).save_pretrained(str(out))


def tiny_vit_classifier(out):
    """ViTForImageClassification with three labels (the shape of an attribute classifier)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    labels = ["bright", "dim", "neutral"]
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=30,
                    patch_size=6, num_labels=3, id2label=dict(enumerate(labels)),
                    label2id={label: i for i, label in enumerate(labels)})
    save_model(ViTForImageClassification(cfg), out)
    ViTImageProcessor(size={"height": 30, "width": 30}).save_pretrained(str(out))


BUILDERS = {
    "tiny-bert": tiny_bert,
    "tiny-gpt2": tiny_gpt2,
    "tiny-clip": tiny_clip,
    "tiny-sd": tiny_sd,
    "tiny-aesthetic": tiny_aesthetic,
    "tiny-t5": tiny_t5,
    "tiny-blip": tiny_blip,
    "tiny-align": tiny_align,
    "tiny-flava": tiny_flava,
    "tiny-vit-classifier": tiny_vit_classifier,
    "tiny-bert-classifier": tiny_bert_classifier,
    # The names models.yaml gives its random-weight stand-ins (`fixtures/<name>`).
    "sd15-tiny": tiny_sd,
    "aesthetic-head": lambda out: tiny_aesthetic(out, input_dim=512),
}


def build(name, out):
    if name not in BUILDERS:
        raise SystemExit(f"no tiny model `{name}`; known: {', '.join(BUILDERS)}")
    BUILDERS[name](out)
