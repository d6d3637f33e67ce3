"""moto's server with the fixes floatover's tests need, each for a gap between moto 5.2.5
and AWS (README, "Which emulator serves what"):

- RDS PromoteReadReplica: moto marks the instance standalone but keeps reporting
  ReadReplicaSourceDBInstanceIdentifier; AWS drops it once the replica is promoted, and
  that is how a resumed promotion knows not to promote again.
- Aurora global clusters: moto keeps them in its us-east-1 backend but RemoveFromGlobalCluster
  looks in the caller's region (and by identifier, where AWS takes the cluster's ARN), so
  a secondary in another region is never detached; SwitchoverGlobalCluster is not served.
  Both are answered here on moto's own global cluster objects: a switchover makes the
  target the writer, a removal detaches the cluster (it becomes its own writer).
- CloudWatch: the Rust SDK speaks Smithy RPC v2 CBOR to CloudWatch (AWS serves it; moto
  serves only the Query and JSON protocols). Requests to
  /service/GraniteServiceVersion20100801/operation/<Op> are decoded from CBOR, handed to
  moto as the same call in the JSON protocol, and the answer is encoded back to CBOR.
"""
import datetime
import io
import json
import sys

import cbor2
import moto.server
from moto.core.responses import ActionResult
from moto.rds import exceptions as rds_exceptions
from moto.rds import models as rds_models
from moto.rds import responses as rds_responses


def _source(self):
    return self.source_db_instance_identifier if self.is_replica else None


rds_models.DBInstance.read_replica_source_db_instance_identifier = property(_source)


def _global_member(response):
    """The global cluster and the member a request names (by ARN or identifier)."""
    params = response.params
    gid = params["GlobalClusterIdentifier"]
    name = params.get("DbClusterIdentifier") or params.get("TargetDbClusterIdentifier")
    glob = response.global_backend.global_clusters.get(gid)
    if glob is None:
        raise rds_exceptions.RDSClientError(
            "GlobalClusterNotFoundFault", f"Global cluster {gid} not found."
        )
    for member in glob.members:
        if name in (member.db_cluster_arn, member.db_cluster_identifier):
            return glob, member
    raise rds_exceptions.DBClusterNotFoundError(name)


def _remove_from_global_cluster(self):
    glob, member = _global_member(self)
    glob.members.remove(member)
    member.is_writer = True
    member.global_cluster_identifier = None
    return ActionResult({"GlobalCluster": glob})


def _switchover_global_cluster(self):
    glob, target = _global_member(self)
    for member in glob.members:
        member.is_writer = member is target
    return ActionResult({"GlobalCluster": glob})


rds_responses.RDSResponse.remove_from_global_cluster = _remove_from_global_cluster
rds_responses.RDSResponse.switchover_global_cluster = _switchover_global_cluster

CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"


def _to_json(value):
    """CBOR values (timestamps are datetimes) as the JSON protocol writes them."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    return value


def _timestamps(value, key=None):
    """The JSON answer's timestamps (epoch seconds under a *Timestamp* key) as datetimes,
    which cbor2 writes as CBOR tag 1, as the SDK expects."""
    if isinstance(value, dict):
        return {k: _timestamps(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_timestamps(v, key) for v in value]
    if key and "Timestamp" in key and isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return value


class CborAdapter:
    def __init__(self, app):
        self.app = app

    def __setattr__(self, name, value):
        if name == "app":
            object.__setattr__(self, name, value)
        else:
            setattr(self.app, name, value)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CBOR_PREFIX):
            return self.app(environ, start_response)
        op = path[len(CBOR_PREFIX):]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        request = cbor2.loads(raw) if raw else {}
        body = json.dumps(_to_json(request)).encode()
        inner = dict(environ)
        inner.pop("HTTP_SMITHY_PROTOCOL", None)
        inner.update(
            {
                "PATH_INFO": "/",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_X_AMZ_TARGET": f"GraniteServiceVersion20100801.{op}",
                "wsgi.input": io.BytesIO(body),
            }
        )
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"] = status
            return lambda _data: None

        chunks = self.app(inner, capture)
        try:
            answer = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        try:
            value = json.loads(answer) if answer.strip() else {}
        except ValueError:
            value = {"__type": "InternalFailure", "message": answer.decode(errors="replace")[:500]}
        out = cbor2.dumps(_timestamps(value), datetime_as_timestamp=True)
        start_response(
            seen.get("status", "500 INTERNAL SERVER ERROR"),
            [
                ("Content-Type", "application/cbor"),
                ("smithy-protocol", "rpc-v2-cbor"),
                ("Content-Length", str(len(out))),
            ],
        )
        return [out]


_Dispatcher = moto.server.DomainDispatcherApplication
moto.server.DomainDispatcherApplication = lambda create: CborAdapter(_Dispatcher(create))

sys.exit(moto.server.main())
