"""Weights in and out, chosen by the model's registered modality.

- `formats`: the table keyed by modality (which of timm / safetensors / official each has, and its
  release converters) and the one importer, `load_official_weights(model, path_or_state)`;
- `export`: `export_model(model, out, fmt)` and `timm_kwargs(config)`;
- `multimodal`: a multi-modal model's encoder once per modality (`modality_encoders(model)`,
  `export_encoders(model, folder, fmt)`), each a timm ViT of that modality's modality-only features;
- one module per reference release format: `mae` (official MAE, HF ViTMAE, timm), `videomae`,
  `audiomae`, `points` (Point-MAE, Point-CMAE);
- `keys`: what every mapping shares (prefix renaming, q/k/v fusion, unwrapping a release file).
"""
