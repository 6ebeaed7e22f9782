"""The labeller: watermark, badge, metadata, C2PA signing identity and manifest."""
