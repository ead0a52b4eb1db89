"""The Open Inference Protocol's gRPC messages and service, generated from
``grpc_predict_v2.proto`` by grpcio-tools (``make oip-proto``) and committed.

The generated ``grpc_predict_v2_pb2`` registers its messages in a descriptor pool of its
own, not protobuf's default one (``make oip-proto`` rewrites that one line): MLServer's,
KServe's and Triton's clients define the same ``inference.*`` messages, and two
definitions of one name in the default pool make the second import fail, so a test or a
tool can import theirs next to ours.
"""
