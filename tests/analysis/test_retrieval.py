import numpy as np
import pytest
import torch

from emf_bench.analysis.retrieval import recall_at_k, topk_cosine


def brute_force(queries, pool, k, exclude):
    s = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(
        pool, dim=-1).T
    s[torch.arange(len(queries)), torch.as_tensor(exclude)] = -2
    return s.topk(k, dim=1)


@pytest.mark.parametrize("query_chunk, pool_chunk", [(7, 13), (1000, 100000), (1, 1)])
def test_chunked_topk_equals_brute_force(query_chunk, pool_chunk):
    torch.manual_seed(0)
    pool = torch.randn(300, 24)
    queries = np.array([0, 5, 17, 299])
    idx, sc = topk_cosine(pool[queries], pool, 3, exclude=queries, query_chunk=query_chunk,
                          pool_chunk=pool_chunk)
    ref = brute_force(pool[queries], pool, 3, queries)
    assert np.array_equal(idx, ref.indices.numpy())
    assert np.allclose(sc, ref.values.numpy(), atol=1e-6)


def test_the_query_itself_is_never_retrieved_even_when_duplicated():
    pool = torch.randn(50, 8)
    pool[10] = pool[3]  # an exact duplicate of query 3 elsewhere in the pool is fair game
    idx, sc = topk_cosine(pool[[3]], pool, 1, exclude=np.array([3]))
    assert idx[0, 0] == 10 and sc[0, 0] == pytest.approx(1.0)


def test_ties_at_the_cutoff_are_broken_at_random_and_seeded():
    pool = torch.ones(1000, 4)
    queries = np.arange(100)
    a, _ = topk_cosine(pool[queries], pool, 2, exclude=queries, seed=1)
    b, _ = topk_cosine(pool[queries], pool, 2, exclude=queries, seed=1)
    c, _ = topk_cosine(pool[queries], pool, 2, exclude=queries, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) > 150  # spread over the pool, not the first items
    assert not (a == queries[:, None]).any()
    assert all(len(set(row)) == 2 for row in a)


def test_ties_keep_the_sure_items_first():
    pool = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    idx, _ = topk_cosine(torch.tensor([[1.0, 0.1]]), pool, 3)
    assert set(idx[0, :2]) == {0, 1} and idx[0, 2] in (2, 3, 4)


def test_recall_hits_if_any_positive_is_in_the_top_k():
    similarity = torch.tensor([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    positives = torch.tensor([[False, True, False], [True, False, False]])
    assert recall_at_k(similarity, positives, (1, 2, 3)) == {1: 0.0, 2: 0.5, 3: 1.0}
