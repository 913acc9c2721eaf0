"""One error family: user errors answered with their kind's status code, bugs answered INTERNAL.

Over real gRPC servers on loopback (two shards and a gateway in this process, an admin in front
of the shards): a fault inside a handler is answered INTERNAL with a generic message (no
exception text, no traceback), is logged with its traceback, and the server keeps serving; a
user error (bad dimension, NaN, unknown id) keeps its documented code. The CLI prints one line
for either: the user error's message, or "internal error, see log: PATH" with the traceback there.
"""

from __future__ import annotations

import inspect
import logging

import grpc
import numpy as np
import pytest
from serving_fixtures import build_store, start_in_process

import modelverse.errors as errors_module
from modelverse.cli.main import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, main
from modelverse.core.reference import MissingStatisticsError
from modelverse.errors import KINDS, InvalidInputError, ModelverseError, error_for_status
from modelverse.query.images import ImageError, ImageTooLarge
from modelverse.serving.admin.service import AdminServicer
from modelverse.serving.errors import INTERNAL_MESSAGE
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.grpc_server import build_server
from modelverse.store.directory import DirectoryStore
from modelverse.store.errors import (
    IncompatibleStatsError,
    ModelExistsError,
    ModelNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
)
from modelverse.v1 import admin_pb2, admin_pb2_grpc, search_pb2, shard_pb2, shard_pb2_grpc

DIM = 64


# -- the family ---------------------------------------------------------------------------------


def test_each_kind_names_one_distinct_grpc_status_code() -> None:
    defined = {obj for _, obj in inspect.getmembers(errors_module, inspect.isclass)
               if issubclass(obj, ModelverseError) and obj is not ModelverseError}
    assert defined == set(KINDS), "every kind is listed in KINDS"
    statuses = [kind.status for kind in KINDS]
    assert len(set(statuses)) == len(statuses)
    for kind in KINDS:
        code = grpc.StatusCode[kind.status]
        assert code not in (grpc.StatusCode.OK, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        assert type(error_for_status(kind.status, "m")) is kind


@pytest.mark.parametrize(("error", "status"), [
    (StoreError, "FAILED_PRECONDITION"), (StoreNotFoundError, "NOT_FOUND"), (StoreCorruptError, "DATA_LOSS"),
    (ModelNotFoundError, "NOT_FOUND"), (ModelExistsError, "ALREADY_EXISTS"),
    (IncompatibleStatsError, "FAILED_PRECONDITION"), (MissingStatisticsError, "FAILED_PRECONDITION"),
    (ImageError, "INVALID_ARGUMENT"), (ImageTooLarge, "RESOURCE_EXHAUSTED"),
])
def test_existing_errors_belong_to_the_family_with_their_kind(error, status) -> None:
    assert issubclass(error, ModelverseError)
    assert error.status == status


def test_a_user_error_message_is_one_line() -> None:
    assert InvalidInputError("query has\n  dimension 3").message == "query has dimension 3"
    assert isinstance(InvalidInputError("x"), ValueError)  # code that checked ValueError keeps working


# -- over gRPC ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    store, small = build_store(root / "store", count=12)
    cluster = start_in_process(root / "store", root / "index", shards=2)
    shard_channel = grpc.insecure_channel(cluster.pool.addresses[0][0])
    admin = AdminServicer(DirectoryStore.open(root / "store"), ShardPool(cluster.pool.addresses))
    admin_server, admin_port, _ = build_server(
        [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, s)],
        [admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name])
    admin_channel = grpc.insecure_channel(f"127.0.0.1:{admin_port}")
    yield (cluster, shard_pb2_grpc.ShardServiceStub(shard_channel), admin_pb2_grpc.AdminServiceStub(admin_channel),
           admin, small)
    admin_channel.close()
    admin_server.stop(grace=None)
    admin.shutdown()
    admin.pool.close()
    shard_channel.close()
    cluster.close()


def search(values) -> search_pb2.SearchRequest:
    request = search_pb2.SearchRequest(top_k=5)
    request.parts.add(vector=search_pb2.Vector(values=list(values)))
    return request


def recall(values) -> shard_pb2.RecallRequest:
    request = shard_pb2.RecallRequest(method=search_pb2.FIRST_MOMENT, candidates=10, top_k=5)
    request.parts.add(values_f64=np.asarray(values, dtype="<f8").tobytes(), weight=1.0)
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    return caught.value


def assert_internal_and_logged(error: grpc.RpcError, caplog, fault: type[BaseException], text: str) -> None:
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE  # nothing of the exception reaches the client
    assert text not in error.details() and "Traceback" not in error.details()
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], fault)]
    assert logged, "the bug is logged with its traceback"
    assert text in logging.Formatter().formatException(logged[0].exc_info)


def test_a_bug_in_the_gateway_is_internal_logged_and_the_gateway_keeps_serving(served, monkeypatch, caplog) -> None:
    cluster, _, _, _, small = served
    query = small.features[0][:10].mean(axis=0)

    def broken(*args, **kwargs):
        return 1 / 0  # a bug deep inside the handler

    monkeypatch.setattr("modelverse.serving.gateway.service.parse_query", broken)
    with caplog.at_level(logging.ERROR):
        error = rpc_error(cluster.gateway.Search, search(query))
    assert_internal_and_logged(error, caplog, ZeroDivisionError, "division by zero")
    monkeypatch.undo()
    assert len(cluster.gateway.Search(search(query), timeout=10).hits) == 5


def test_a_value_error_from_a_bug_in_the_shard_is_internal_not_invalid_argument(served, monkeypatch, caplog) -> None:
    cluster, shard, _, _, small = served
    query = small.features[1][:10].mean(axis=0)
    state = cluster.states[0]

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")  # numpy's, from a bug of ours

    monkeypatch.setattr(state, "recall", broken)
    with caplog.at_level(logging.ERROR):
        error = rpc_error(shard.Recall, recall(query))
    assert_internal_and_logged(error, caplog, ValueError, "broadcast")
    # The gateway treats a shard's INTERNAL as that shard's failure: the other shard still answers.
    answer = cluster.gateway.Search(search(query), timeout=10)
    assert answer.partial and list(answer.missing_shards) == [0]
    monkeypatch.undo()
    assert not cluster.gateway.Search(search(query), timeout=10).partial
    assert len(shard.Recall(recall(query), timeout=10).ids) > 0  # the shard kept serving


def test_a_bug_in_the_admin_is_internal_and_logged(served, monkeypatch, caplog) -> None:
    _, _, admin_stub, admin, small = served

    def broken(model_id: str) -> None:
        raise KeyError("the index of a bug")

    monkeypatch.setattr(admin.store, "remove", broken)
    with caplog.at_level(logging.ERROR):
        error = rpc_error(admin_stub.RemoveModel, admin_pb2.RemoveModelRequest(id=small.ids[0]))
    assert_internal_and_logged(error, caplog, KeyError, "the index of a bug")


@pytest.mark.parametrize(("values", "code", "says"), [
    (np.ones(DIM + 1), grpc.StatusCode.INVALID_ARGUMENT, "dimension"),
    (np.r_[np.nan, np.ones(DIM - 1)], grpc.StatusCode.INVALID_ARGUMENT, "NaN"),
    (np.zeros(DIM), grpc.StatusCode.INVALID_ARGUMENT, "zeros"),
])
def test_user_errors_keep_their_codes_at_the_gateway_and_the_shard(served, values, code, says) -> None:
    cluster, shard, _, _, _ = served
    for error in (rpc_error(cluster.gateway.Search, search(values)), rpc_error(shard.Recall, recall(values))):
        assert error.code() == code
        assert says in error.details()


def test_a_malformed_query_model_is_the_callers_error_at_the_shard(served) -> None:
    _, shard, _, _, _ = served
    request = shard_pb2.RecallRequest(method=search_pb2.FRECHET, candidates=10, top_k=5)
    request.query_model.CopyFrom(shard_pb2.QueryModel(id="q", mean=[0.0] * DIM, dim=DIM, rank=8, trace=1.0,
                                                      diag_f16=b"\0" * 6, factor_f16=b""))
    error = rpc_error(shard.Recall, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "query_model" in error.details()


def test_unknown_and_malformed_ids_are_not_found_and_invalid(served) -> None:
    cluster, _, admin_stub, _, _ = served
    error = rpc_error(cluster.gateway.GetModel, search_pb2.GetModelRequest(id="no-such-model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "no-such-model" in error.details()
    error = rpc_error(admin_stub.RemoveModel, admin_pb2.RemoveModelRequest(id="no-such-model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(admin_stub.RemoveModel, admin_pb2.RemoveModelRequest(id=" padded "))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "whitespace" in error.details()


# -- the CLI ----------------------------------------------------------------------------------------


@pytest.fixture()
def cli_store(tmp_path, monkeypatch):
    build_store(tmp_path / "store", count=4)
    log_file = tmp_path / "logs" / "cli.log"
    monkeypatch.setenv("MODELVERSE_CLI_LOG", str(log_file))
    return tmp_path / "store", log_file


def test_the_cli_answers_a_bug_with_one_line_and_logs_the_traceback(cli_store, monkeypatch, capsys) -> None:
    store, log_file = cli_store

    def broken(self):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(DirectoryStore, "ids", broken)
    assert main(["list", "--store", str(store)]) == EXIT_INTERNAL_ERROR != EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.splitlines() == [f"modelverse list: internal error, see log: {log_file}"]
    logged = log_file.read_text()
    assert "Traceback" in logged and "ValueError: a bug, not the user's input" in logged
    assert "modelverse list --store" in logged


def test_the_cli_prints_a_user_error_as_its_message(cli_store, capsys) -> None:
    store, log_file = cli_store
    assert main(["info", "--store", str(store), "no-such-model"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.splitlines() == [f"modelverse info: error: no model 'no-such-model' in {store}"]
    vector = store.parent / "q.npy"
    np.save(vector, np.ones(DIM + 3))
    assert main(["search", "--store", str(store), "--vector", str(vector)]) == EXIT_USER_ERROR
    assert "dimension" in capsys.readouterr().err
    assert not log_file.exists()  # user errors are not bugs: nothing logged
