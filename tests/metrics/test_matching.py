import torch

from medleak.metrics import match_reconstructions, pairwise_ssim


def test_matching_recovers_a_known_permutation() -> None:
    g = torch.Generator().manual_seed(3)
    originals = torch.rand(6, 1, 32, 32, generator=g)
    perm = [4, 0, 5, 2, 1, 3]  # reconstruction perm[i] comes from original i
    recon = torch.empty_like(originals)
    for i, j in enumerate(perm):
        recon[j] = (originals[i] + 0.15 * torch.randn(1, 32, 32, generator=g)).clamp(0, 1)
    assert match_reconstructions(originals, recon) == perm


def test_matching_is_global_not_greedy() -> None:
    # A greedy pass would give original 0 the reconstruction it likes best (1) and leave
    # original 1 a poor match; the assignment maximises the total instead.
    g = torch.Generator().manual_seed(5)
    a = torch.rand(2, 1, 24, 24, generator=g)
    r0 = (0.5 * a[0] + 0.5 * a[1]).unsqueeze(0)
    r1 = a[1].unsqueeze(0)
    recon = torch.cat([r0, r1])
    sim = pairwise_ssim(a, recon)
    matched = match_reconstructions(a, recon)
    total = sim[0, matched[0]] + sim[1, matched[1]]
    assert total >= sim[0, 0] + sim[1, 1] - 1e-12
    assert total >= sim[0, 1] + sim[1, 0] - 1e-12
    assert sorted(matched) == [0, 1]
