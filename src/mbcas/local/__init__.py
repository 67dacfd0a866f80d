"""A real Kubernetes control plane on loopback (etcd, kube-apiserver, kube-controller-manager)
and a node emulator standing in for the kubelet, for tests and ``make demo``."""
