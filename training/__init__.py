"""Offline contrastive training and fine-tuning of clap_core models (the library never imports this)."""
