"""The smoke run's client (deploy/smoke.sh runs it inside the serving image, host network):
registers zoo models through the admin API and waits until they are served, then searches
through the gateway and checks the answer. Exit status 0 = the check held; each step prints one
line with its time."""

from __future__ import annotations

import argparse
import sys
import time

import grpc

from modelverse.client import connect, read_key_file
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, search_pb2_grpc

# small on purpose (a chunk of 500 takes about a minute on the shared 2-core VM), two chunks
# per model so the fleet's merge of partial moments runs too
SMOKE_SAMPLING = admin_pb2.SamplingOptions(samples=1000, adaptive=False, chunk_size=500)


def register(args: argparse.Namespace) -> int:
    admin = admin_pb2_grpc.AdminServiceStub(connect(args.admin, read_key_file(args.key_file)))
    start = time.monotonic()
    jobs = {}
    for model in args.model:
        job = admin.RegisterModel(admin_pb2.RegisterModelRequest(metadata=search_pb2.Model(id=model), zoo_model=model, sampling=SMOKE_SAMPLING), timeout=30)
        jobs[model] = job.id
        print(f"registered {model}: job {job.id} {admin_pb2.JobState.Name(job.state)}")
    deadline = start + args.timeout
    while jobs and time.monotonic() < deadline:
        for model, job_id in list(jobs.items()):
            job = admin.GetJob(admin_pb2.GetJobRequest(id=job_id), timeout=10)
            if job.state == admin_pb2.FAILED:
                print(f"FAIL {model}: {job.error[:500]}")
                return 1
            if job.state == admin_pb2.SUCCEEDED:
                print(f"{model} searchable after {time.monotonic() - start:.1f} s "
                      f"({job.samples_used} samples, {job.chunks_done} chunks)")
                del jobs[model]
        time.sleep(1)
    if jobs:
        print(f"FAIL: not searchable within {args.timeout} s: {sorted(jobs)}")
        return 1
    return 0


def search(args: argparse.Namespace) -> int:
    gateway = search_pb2_grpc.SearchServiceStub(connect(args.gateway, read_key_file(args.key_file)))
    start = time.monotonic()
    request = search_pb2.SearchRequest(parts=[search_pb2.QueryPart(text=args.text)], top_k=5)
    try:
        reply = gateway.Search(request, timeout=30)
    except grpc.RpcError as error:
        print(f"FAIL search: {error.code().name}: {error.details()}")
        return 1
    hits = [hit.model.id for hit in reply.hits]
    print(f"search {args.text!r}: {hits} partial={reply.partial} missing_shards={list(reply.missing_shards)} "
          f"in {1000 * (time.monotonic() - start):.0f} ms")
    ok = bool(hits) and hits[0] == args.expect_first and reply.partial == args.expect_partial
    if args.expect_missing is not None:
        ok = ok and list(reply.missing_shards) == args.expect_missing
    if args.expect_absent:
        ok = ok and args.expect_absent not in hits
    print("ok" if ok else "FAIL: unexpected answer")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register")
    reg.add_argument("--admin", required=True)
    reg.add_argument("--key-file", required=True)
    reg.add_argument("--model", action="append", required=True)
    reg.add_argument("--timeout", type=float, default=600)
    reg.set_defaults(run=register)
    find = commands.add_parser("search")
    find.add_argument("--gateway", required=True)
    find.add_argument("--key-file", required=True)
    find.add_argument("--text", required=True)
    find.add_argument("--expect-first", required=True)
    find.add_argument("--expect-partial", action="store_true")
    find.add_argument("--expect-missing", type=int, nargs="*", default=None)
    find.add_argument("--expect-absent", default=None)
    find.set_defaults(run=search)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
