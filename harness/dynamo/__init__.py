"""NVIDIA Dynamo: its stack kind (frontend, mocker workers, etcd)."""
