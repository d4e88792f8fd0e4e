"""An OTLP/gRPC server (PyPI grpcio and opentelemetry-proto's generated services) for
the receiver tests: tandem's otlp sink with the grpc protocol exports to it.

Usage: grpc_otlp_server.py DIR. Listens on 127.0.0.1 (a free port), prints the port on
its first line, writes each request's message to DIR/NNN-SIGNAL.pb (the layout
list_otlp.py reads) and answers success; stops when its stdin closes.
"""

import itertools
import pathlib
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

directory = pathlib.Path(sys.argv[1])
directory.mkdir(parents=True, exist_ok=True)
counter = itertools.count()
lock = threading.Lock()


def keep(signal, request):
    with lock:
        n = next(counter)
    (directory / f"{n:03}-{signal}.pb").write_bytes(request.SerializeToString())


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        keep("traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        keep("metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        keep("logs", request)
        return logs_service_pb2.ExportLogsServiceResponse()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(grace=1).wait()
