"""The Gaussian NLL and posterior mean of the STBN sRGB loss, on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from dnervcodec.denoise.gaussian import covariance_from_raw, gaussian_nll, posterior_mean


def _random_spd(n: int, gen: torch.Generator, scale: float = 0.05) -> torch.Tensor:
    a = torch.randn(n, 3, 3, generator=gen, dtype=torch.float64) * scale
    return a @ a.transpose(-1, -2) + 1e-4 * torch.eye(3, dtype=torch.float64)


def test_posterior_limits_prior_certain_gives_mu_and_prior_vague_gives_y() -> None:
    gen = torch.Generator().manual_seed(0)
    y, mu = torch.rand(5, 3, generator=gen, dtype=torch.float64), torch.rand(5, 3, generator=gen, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(5, 3, 3)
    s = 30 / 255
    assert torch.allclose(posterior_mean(y, mu, 1e-12 * eye, s), mu, atol=1e-9)
    assert torch.allclose(posterior_mean(y, mu, 1e9 * eye, s), y, atol=1e-9)
    # no noise: the observation is the clean pixel, whatever the prior says
    assert torch.allclose(posterior_mean(y, mu, _random_spd(5, gen), 0.0), y, atol=1e-9)


def test_diagonal_case_is_the_scalar_closed_form_per_channel() -> None:
    gen = torch.Generator().manual_seed(1)
    y, mu = torch.rand(7, 3, generator=gen, dtype=torch.float64), torch.rand(7, 3, generator=gen, dtype=torch.float64)
    var_x = torch.rand(7, 3, generator=gen, dtype=torch.float64) * 0.02
    s = 0.1
    cov = torch.diag_embed(var_x)
    expected_mean = (s**2 * mu + var_x * y) / (var_x + s**2)
    assert torch.allclose(posterior_mean(y, mu, cov, s), expected_mean, atol=1e-12)
    var_y = var_x + s**2
    expected_nll = (0.5 * (y - mu) ** 2 / var_y + 0.5 * torch.log(2 * math.pi * var_y)).sum(-1)
    assert torch.allclose(gaussian_nll(y, mu, cov, s), expected_nll, atol=1e-10)


def test_full_covariance_matches_torch_reference() -> None:
    gen = torch.Generator().manual_seed(2)
    n, s = 50, 0.07
    y, mu = torch.rand(n, 3, generator=gen, dtype=torch.float64), torch.rand(n, 3, generator=gen, dtype=torch.float64)
    cov_x = _random_spd(n, gen)
    cov_y = cov_x + s**2 * torch.eye(3, dtype=torch.float64)
    ref_nll = -torch.distributions.MultivariateNormal(mu, covariance_matrix=cov_y).log_prob(y)
    assert torch.allclose(gaussian_nll(y, mu, cov_x, s), ref_nll, atol=1e-9)
    ref_mean = mu + (cov_x @ torch.linalg.solve(cov_y, (y - mu).unsqueeze(-1))).squeeze(-1)
    assert torch.allclose(posterior_mean(y, mu, cov_x, s), ref_mean, atol=1e-10)
    # leading dimensions broadcast: [B,T,H,W,3] as STBN uses it
    shaped = gaussian_nll(y.view(2, 5, 5, 3), mu.view(2, 5, 5, 3), cov_x.view(2, 5, 5, 3, 3), s)
    assert torch.allclose(shaped.flatten(), ref_nll, atol=1e-9)


def test_covariance_parametrisation_is_symmetric_positive_definite_and_differentiable() -> None:
    gen = torch.Generator().manual_seed(3)
    raw = torch.randn(200, 6, generator=gen, dtype=torch.float64) * 10  # far outside the usual range
    cov = covariance_from_raw(raw)
    assert torch.equal(cov, cov.transpose(-1, -2))
    assert torch.linalg.eigvalsh(cov).min() > 0
    raw_small = torch.randn(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    y, mu = torch.rand(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda r: gaussian_nll(y, mu, covariance_from_raw(r), 0.1), (raw_small,))
    with pytest.raises(ValueError, match="6"):
        covariance_from_raw(torch.zeros(2, 3))


def test_minimising_the_nll_recovers_the_clean_mean_and_covariance() -> None:
    """The loss is a proper likelihood: fitted to noisy samples only, it finds the clean prior."""
    gen = torch.Generator().manual_seed(4)
    true_mu = torch.tensor([0.3, 0.5, 0.6], dtype=torch.float64)
    chol = torch.tensor([[0.08, 0, 0], [0.05, 0.04, 0], [-0.03, 0.02, 0.06]], dtype=torch.float64)
    s = 0.1
    x = true_mu + torch.randn(4000, 3, generator=gen, dtype=torch.float64) @ chol.T
    y = x + s * torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    mu = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    raw = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, raw], lr=0.05)
    for _ in range(300):
        loss = gaussian_nll(y, mu, covariance_from_raw(raw), s).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(mu.detach(), true_mu, atol=0.01)
    assert torch.allclose(covariance_from_raw(raw).detach(), chol @ chol.T, atol=1.5e-3)
    # and its posterior mean denoises better than both the prior mean and the noisy sample
    post = posterior_mean(y, mu.detach(), covariance_from_raw(raw).detach(), s)
    err = {k: float(((v - x) ** 2).mean()) for k, v in {"post": post, "prior": true_mu.expand_as(x), "y": y}.items()}
    assert err["post"] < 0.8 * min(err["prior"], err["y"]), err
