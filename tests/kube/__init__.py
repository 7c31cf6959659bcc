"""A Kubernetes cluster to test against, where no real one can run (no container runtime, no API server).

It stands in for a cluster and knows nothing of the gateway (it never imports `gateway`): anything that
speaks to a Kubernetes API over HTTP with a kubeconfig can be tested with it.

What it emulates
- The API server (emulator.py over kmock's KubernetesEmulator, served over HTTP by server.py): create,
  get, list, watch, merge and JSON patch, PUT, delete; resourceVersion from one global counter, uid,
  creationTimestamp, generation; 409 on a stale resourceVersion; label selectors (`=`, `!=`, `in`, `notin`,
  exists, `!`) and a few field selectors on list and watch; watch from a resourceVersion (only later
  events; 410 Gone after `compact()`), `timeoutSeconds`; the Deployment `/scale` (autoscaling/v1 Scale)
  and `/status` subresources; API discovery (kmock's bundled resource list) and `/version`.
- Faults on demand (faults.py): the next N matching requests answer 500, or 429 with Retry-After; a watch
  answered with ERROR 410 Gone, or with a plain list; connection refused (`KubeApi.down()`).
- A Deployment controller, garbage collector and one node (controller.py, kubelet.py): pods per
  `spec.replicas`, each pod's first container run as a real process on its own 127.0.x.y (pods.py),
  readiness probes (httpGet, tcpSocket), restarts after a crash with restartCount, graceful termination
  (SIGTERM, then SIGKILL after the grace period), Deployment status, rolling to a changed template.
- Plain kmock (`wrapped=False`): what a client must also survive: no resourceVersion, selectors ignored,
  every watch starting with ADDED for everything.

What it does not
- No authentication or authorisation (RBAC is not checked), no admission, no schema validation beyond
  what the client does (defaulting and validation cover what the controller relies on), no strategic
  merge (a strategic merge patch is read as a merge patch: lists are replaced, not merged by key), no
  server-side apply, no pagination (`limit` is ignored), no deletecollection, no namespaces as objects
  (any namespace works without being created); bookmarks only as the one a watch that asked for them
  gets as it ends.
- No ReplicaSets (pods are owned by their Deployment), no scheduler or resources (requests, limits,
  nodeSelector and tolerations are stored, not acted on), one node, no Services or Endpoints objects.
- Containers are not isolated: a pod's process shares the host's filesystem and environment, runs its
  `command` (or an entrypoint the test gives per image) rather than an image, and only the first
  container runs. Probes run every 0.1 s until Ready, then every 0.5 s, whatever periodSeconds says;
  initialDelaySeconds, successThreshold and HTTPS probes are not emulated.
"""
