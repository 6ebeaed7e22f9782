"""Personal LoRA training and export."""
