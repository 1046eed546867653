"""The EMA codebook under torch.distributed: two CPU (gloo) processes, each with half of a batch,
must end with identical codebooks equal to one process's update on the whole batch; data
initialisation and dead-code restarts must also leave both ranks identical."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genlab.models.vqvae import VectorQuantizer

K, D = 4, 3


def _batch() -> torch.Tensor:
    return torch.randn(4, D, 3, 3, generator=torch.Generator().manual_seed(0))


def _quantizer(**kw) -> VectorQuantizer:
    q = VectorQuantizer(K, D, decay=0.8, eps=1e-5, init="uniform", restart_threshold=0, **kw)
    cb = torch.randn(K, D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        q.embedding.copy_(cb)
        q.ema_sum.copy_(cb)
    return q.train()


def _ema_steps(q: VectorQuantizer, z: torch.Tensor) -> None:
    for step in range(3):
        q(z * (1 + 0.1 * step))


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        half = _batch().chunk(world)[rank]
        q = _quantizer()
        _ema_steps(q, half)
        # data init (rank 0's batch) and aggressive restarts: the ranks see different data
        torch.manual_seed(100 + rank)
        r = VectorQuantizer(K, D, decay=0.5, init="data", restart_threshold=50.0, usage_decay=0.5).train()
        for _ in range(3):
            r(torch.randn(2, D, 3, 3) + rank)
        torch.save({"ema": q.state_dict(), "restart": r.state_dict()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ema_statistics_are_all_reduced_across_two_processes(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt") for i in range(2))
    for key in ("embedding", "ema_count", "ema_sum", "usage"):
        assert torch.equal(r0["ema"][key], r1["ema"][key]), key

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _quantizer()
        _ema_steps(single, _batch())  # one process, the concatenated batch
    finally:
        torch.set_num_threads(n)
    for key in ("embedding", "ema_count", "ema_sum"):
        assert torch.allclose(r0["ema"][key], single.state_dict()[key], atol=1e-5), key

    assert int(r0["restart"]["restarts"]) > 0, "the test must exercise restarts"
    for key in ("embedding", "ema_count", "ema_sum", "usage", "restarts"):
        assert torch.equal(r0["restart"][key], r1["restart"][key]), key
