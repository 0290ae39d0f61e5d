//! One standard interface per model family (diffusion, vision-language, language, specialized) and its implementations.
