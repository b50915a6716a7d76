"""The CHK encoding pipeline: parameters, UEB, upload (feed/finish) and download (wants/give)."""
