"""IR -> other forms (``k8s``: Kubernetes objects that ``kspec.ingest.k8s`` reads back)."""
