"""Grid shells: upload and download drivers over many storage servers."""
