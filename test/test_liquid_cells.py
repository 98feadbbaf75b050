"""CfC / LTC cells and the sequence wrapper: shapes, dt semantics, masks, resets, gradients."""
import numpy as np
import pytest
import torch

from lnn_drone.liquid import CfCCell, LiquidRNN, LTCCell
from lnn_drone.liquid.wiring import fully_connected_wiring, ncp_wiring

torch.manual_seed(0)
WIRING = ncp_wiring(5, inter_neurons=6, command_neurons=5, motor_neurons=3, sensory_fanout=3,
                    inter_fanout=2, recurrent_command_synapses=3, motor_fanin=2, seed=7)


def cells():
    torch.manual_seed(1)
    return [CfCCell(WIRING), CfCCell(WIRING, "no_gate"), CfCCell(WIRING, "pure"), CfCCell(WIRING, mask_mode="ncps"),
            LTCCell(WIRING, ode_unfolds=4), CfCCell(fully_connected_wiring(5, 8, 3)), LTCCell(fully_connected_wiring(5, 8, 3))]


@pytest.mark.parametrize("cell", cells(), ids=lambda c: f"{type(c).__name__}-{getattr(c, 'mode', 'ltc')}")
def test_shapes_and_sequence(cell):
    rnn = LiquidRNN(cell)
    x = torch.randn(4, 7, 5)
    out = rnn(x, torch.rand(4, 7) * 0.1, return_states=True)
    n = cell.state_size
    assert out.outputs.shape == (4, 7, 3) and out.state.shape == (4, n)
    assert out.states.shape == (4, 7, n) and out.aux.shape == (4, 7, n)
    assert torch.equal(out.states[:, -1], out.state)
    # outputs are the motor (last) neurons, before any output mapping for CfC
    if isinstance(cell, CfCCell):
        assert torch.allclose(out.outputs, out.states[..., -3:])
    # dt as scalar, (B,), (B, T) agree when equal
    a = rnn(x, 0.05).outputs
    assert torch.allclose(a, rnn(x, torch.full((4,), 0.05)).outputs)
    assert torch.allclose(a, rnn(x, torch.full((4, 7, 1), 0.05)).outputs)
    with pytest.raises(ValueError):
        rnn(x, torch.ones(3, 7))


def test_per_sample_dt_is_really_per_sample():
    """A batch with different dt per sample equals running each sample alone (ncps gets this wrong)."""
    for cell in (CfCCell(WIRING), LTCCell(WIRING)):
        rnn = LiquidRNN(cell)
        x, dt = torch.randn(3, 6, 5), torch.rand(3, 6) * 0.2 + 0.01
        batched = rnn(x, dt).outputs
        for b in range(3):
            assert torch.allclose(batched[b], rnn(x[b : b + 1], dt[b : b + 1]).outputs[0], atol=1e-6)


def test_ltc_dt_semantics():
    cell = LTCCell(WIRING, ode_unfolds=6)
    x, v0 = torch.randn(1, 5), torch.randn(1, cell.state_size)
    _, v, tau = cell(x, v0, torch.tensor([0.0]))
    assert torch.allclose(v, v0, rtol=1e-6, atol=0)  # no time elapsed: state kept (no division by zero)
    assert (tau > 0).all()
    # a longer step moves further towards the input-driven equilibrium
    d_small = (cell(x, v0, torch.tensor([0.01]))[1] - v0).norm()
    d_large = (cell(x, v0, torch.tensor([0.5]))[1] - v0).norm()
    assert 0 < d_small < d_large
    # the same ODE at two step sizes: results converge as the step shrinks
    def integrate(n):
        v = v0
        for _ in range(n):
            v = cell(x, v, torch.tensor([1.0 / n]))[1]
        return v

    fine = integrate(200)
    assert (integrate(50) - fine).abs().max() < (integrate(1) - fine).abs().max()
    assert (integrate(50) - fine).abs().max() < 0.01


def test_cfc_time_gate_depends_on_dt():
    cell = CfCCell(WIRING)
    x, h = torch.randn(2, 5), torch.randn(2, cell.state_size)
    _, h1, g1 = cell(x, h, torch.tensor([0.01, 0.01]))
    _, h2, g2 = cell(x, h, torch.tensor([0.01, 3.0]))
    assert torch.allclose(h1[0], h2[0]) and not torch.allclose(h1[1], h2[1])
    assert ((g1 > 0) & (g1 < 1)).all()


def test_cfc_masks_zero_weights_and_gradients():
    for mask_mode in ("strict", "ncps"):
        cell = CfCCell(WIRING, mask_mode=mask_mode)
        for layer in cell.layers:
            assert torch.equal(layer.weight * (1 - layer.mask), torch.zeros_like(layer.weight))
        out = LiquidRNN(cell)(torch.randn(3, 5, 5), 0.1)
        out.outputs.square().sum().backward()
        for l, layer in enumerate(cell.layers):
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
            assert torch.equal(layer.weight.grad * (1 - layer.mask), torch.zeros_like(layer.weight))
            size = WIRING.layer_sizes[l]
            gates = layer.mask[2 * size :]
            if mask_mode == "strict":
                assert (gates == 0).any()  # the time gates follow the wiring
            else:
                assert (gates == 1).all()


def test_cfc_strict_differs_from_ncps_masks():
    torch.manual_seed(3)
    strict = CfCCell(WIRING)
    loose = CfCCell(WIRING, mask_mode="ncps")
    with torch.no_grad():
        for a, b in zip(strict.layers, loose.layers):
            b.weight.copy_(torch.randn_like(b.weight))
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    x, h = torch.randn(1, 5), torch.randn(1, strict.state_size)
    assert not torch.allclose(strict(x, h, 0.1)[1], loose(x, h, 0.1)[1])


def test_ltc_masks_and_positivity():
    cell = LTCCell(WIRING)
    out = LiquidRNN(cell)(torch.randn(2, 4, 5), 0.05)
    out.outputs.sum().backward()
    absent = cell.mask == 0
    for p in (cell.w, cell.sigma, cell.mu, cell.erev):
        assert p.grad[absent].abs().max() == 0
    assert cell.w.grad[~absent].abs().sum() > 0
    assert cell.sensory_w.grad[cell.sensory_mask == 0].abs().max() == 0
    # raw parameters may go negative; the effective ones stay positive
    with torch.no_grad():
        cell.cm.fill_(-5.0)
        cell.gleak.fill_(-5.0)
        cell.w.fill_(-5.0)
    _, v, tau = cell(torch.randn(1, 5), torch.zeros(1, cell.state_size), 0.1)
    assert torch.isfinite(v).all() and (tau > 0).all()
    # initial reversal potentials carry the wiring polarity
    assert torch.equal(torch.sign(LTCCell(WIRING).erev), torch.from_numpy(WIRING.adjacency.astype(np.float32)))


def test_reset_mask_zeroes_state_at_episode_start():
    for cell in (CfCCell(WIRING), LTCCell(WIRING)):
        rnn = LiquidRNN(cell)
        x, dt = torch.randn(2, 8, 5), torch.full((2, 8), 0.05)
        reset = torch.zeros(2, 8, dtype=torch.bool)
        reset[0, 5] = True
        h0 = torch.randn(2, cell.state_size)
        joined = rnn(x, dt, h0=h0, reset=reset).outputs
        fresh = rnn(x[:1, 5:], dt[:1, 5:]).outputs  # episode 2 of sample 0 from zero state
        assert torch.allclose(joined[0, 5:], fresh[0], atol=1e-6)
        assert torch.allclose(joined[1], rnn(x[1:], dt[1:], h0=h0[1:]).outputs[0], atol=1e-6)
        assert not torch.allclose(joined[0, :5], rnn(x[:1, :5], dt[:1, :5]).outputs[0])  # h0 mattered
        with pytest.raises(ValueError):
            rnn(x, dt, reset=torch.zeros(2, 7))


def test_gradient_flows_through_time_to_every_parameter():
    for cell in (CfCCell(WIRING), CfCCell(WIRING, "no_gate"), LTCCell(WIRING)):
        x = torch.randn(2, 10, 5, requires_grad=True)
        out = LiquidRNN(cell)(x, 0.05)
        out.outputs[:, -1].sum().backward()
        assert x.grad[:, 0].abs().sum() > 0  # the last output depends on the first input
        for name, p in cell.named_parameters():
            if name not in ("output_w", "output_b"):
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
