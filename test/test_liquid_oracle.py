"""Oracle parity with ncps==1.0.1 at batch 1 with copied weights (ncps is a test-only dependency).

Known, deliberate differences (see lnn_drone/liquid/cfc.py): our default CfC masks follow the
wiring everywhere (``mask_mode="strict"``); ``mask_mode="ncps"`` reproduces ncps, which masks
only f1/f2 on the input side. Neuron order: ncps numbers motor neurons first, we store layers in
order (inter, command, motor), so weights are permuted when copied. ncps' wiring objects mutate
when a second cell builds them, so each ncps cell gets a fresh wiring.
"""
import numpy as np
import pytest
import torch

ncps = pytest.importorskip("ncps", reason="ncps==1.0.1 (the test oracle, 'dev' extra) is not installed")
from ncps.torch import CfC as NcpsCfC  # noqa: E402
from ncps.torch import LTCCell as NcpsLTCCell  # noqa: E402
from ncps.wirings import NCP as NcpsNCP  # noqa: E402

from lnn_drone.liquid import CfCCell, LTCCell  # noqa: E402
from lnn_drone.liquid.wiring import Wiring, fully_connected_wiring  # noqa: E402

F = 6
STEPS = 60


def ncps_wiring():
    return NcpsNCP(inter_neurons=5, command_neurons=4, motor_neurons=3, sensory_fanout=3, inter_fanout=2,
                   recurrent_command_synapses=3, motor_fanin=2, seed=11)


def our_wiring(nw) -> tuple[Wiring, np.ndarray]:
    perm = np.array(list(nw._inter_neurons) + list(nw._command_neurons) + list(nw._motor_neurons))
    w = Wiring(nw.sensory_adjacency_matrix[:, perm], nw.adjacency_matrix[np.ix_(perm, perm)],
               (5, 4, 3), 3, kind="ncp", layer_names=("inter", "command", "motor"))
    return w, perm


def sequence():
    g = torch.Generator().manual_seed(5)
    return torch.randn(1, STEPS, F, generator=g) * 1.5, torch.rand(1, STEPS, generator=g) * 0.9 + 0.02


def run_ours(cell, x, dt):
    h = torch.zeros(1, cell.state_size)
    outs = []
    for t in range(x.shape[1]):
        out, h, _ = cell(x[:, t], h, dt[:, t])
        outs.append(out)
    return torch.stack(outs, 1), h


def copy_cfc_layer(ours, theirs, mode):
    with torch.no_grad():
        if mode == "pure":
            ours.weight.copy_(theirs.ff1.weight)
            ours.bias.copy_(theirs.ff1.bias)
            ours.w_tau.copy_(theirs.w_tau.view(-1))
            ours.A.copy_(theirs.A.view(-1))
        else:
            ours.weight.copy_(torch.cat([theirs.ff1.weight, theirs.ff2.weight, theirs.time_a.weight, theirs.time_b.weight]))
            ours.bias.copy_(torch.cat([theirs.ff1.bias, theirs.ff2.bias, theirs.time_a.bias, theirs.time_b.bias]))


@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_wired_cfc_matches_ncps(mode):
    torch.manual_seed(0)
    nw = ncps_wiring()
    theirs = NcpsCfC(F, nw, mode=mode, return_sequences=True)
    wiring, _ = our_wiring(nw)
    ours = CfCCell(wiring, mode=mode, mask_mode="ncps")
    for l in range(3):
        copy_cfc_layer(ours.layers[l], theirs.rnn_cell._layers[l], mode)
    x, dt = sequence()
    ref_out, ref_h = theirs(x, timespans=dt.unsqueeze(-1))
    out, h = run_ours(ours, x, dt)
    assert (out - ref_out).abs().max() < 1e-5
    assert (h - ref_h).abs().max() < 1e-5  # ncps' state is also layer-ordered
    # strict masks (our default) are a different model on the same weights
    strict = CfCCell(wiring, mode=mode)
    for l in range(3):
        copy_cfc_layer(strict.layers[l], theirs.rnn_cell._layers[l], mode)
    assert (run_ours(strict, x, dt)[0] - ref_out).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_dense_cfc_matches_ncps(mode):
    torch.manual_seed(1)
    theirs = NcpsCfC(F, 7, mode=mode, backbone_layers=0, return_sequences=True)
    ours = CfCCell(fully_connected_wiring(F, 7), mode=mode)
    copy_cfc_layer(ours.layers[0], theirs.rnn_cell, mode)
    x, dt = sequence()
    ref_out, _ = theirs(x, timespans=dt.unsqueeze(-1))
    out, _ = run_ours(ours, x, dt)
    assert (out - ref_out).abs().max() < 1e-5


def test_ltc_matches_ncps():
    torch.manual_seed(2)
    nw = ncps_wiring()
    theirs = NcpsLTCCell(nw, F, ode_unfolds=6, implicit_param_constraints=True)
    wiring, perm = our_wiring(nw)
    ours = LTCCell(wiring, ode_unfolds=6)
    p = torch.from_numpy(perm)
    with torch.no_grad():
        for name in ("gleak", "vleak", "cm"):
            getattr(ours, name).copy_(theirs._params[name][p])
        for name in ("sigma", "mu", "w", "erev"):
            getattr(ours, name).copy_(theirs._params[name][p][:, p])
        for name in ("sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev"):
            getattr(ours, name).copy_(theirs._params[name][:, p])
        for name in ("input_w", "input_b", "output_w", "output_b"):
            getattr(ours, name).copy_(theirs._params[name] + 0.1 * torch.randn_like(theirs._params[name]))
            theirs._params[name].copy_(getattr(ours, name))
    x, dt = sequence()
    v_ref = torch.zeros(1, wiring.units)
    v = torch.zeros(1, wiring.units)
    worst = 0.0
    for t in range(STEPS):
        with torch.no_grad():
            ref, v_ref = theirs(x[:, t], v_ref, float(dt[0, t]))
            out, v, _ = ours(x[:, t], v, dt[:, t])
        worst = max(worst, float((out - ref).abs().max()), float((v - v_ref[:, p]).abs().max()))
    assert worst < 1e-5
