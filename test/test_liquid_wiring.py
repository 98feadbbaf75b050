"""NCP / dense wiring generator: determinism, structure, serialisation, immutability."""
import numpy as np
import pytest

from lnn_drone.liquid.wiring import Wiring, WiringError, fully_connected_wiring, ncp_wiring


def test_ncp_is_deterministic_and_seed_dependent():
    a, b = ncp_wiring(22, seed=3), ncp_wiring(22, seed=3)
    assert a.same_as(b)
    assert not a.same_as(ncp_wiring(22, seed=4))


def test_ncp_structure():
    w = ncp_wiring(10, inter_neurons=6, command_neurons=5, motor_neurons=4, sensory_fanout=3,
                   inter_fanout=2, recurrent_command_synapses=3, motor_fanin=3, seed=1)
    inter, command, motor = (w.layer_slice(i) for i in range(3))
    assert w.units == 15 and w.output_size == 4 and w.output_slice == motor
    # every sensory input reaches exactly `sensory_fanout` inter neurons and nothing else
    assert (np.count_nonzero(w.sensory[:, inter], axis=1) >= 3).all()
    assert np.count_nonzero(w.sensory[:, 6:]) == 0
    # only inter->command, command->command and command->motor synapses exist
    allowed = np.zeros((15, 15), bool)
    allowed[inter, command] = allowed[command, command] = allowed[command, motor] = True
    assert not (w.adjacency[~allowed]).any()
    # every neuron gets input; every motor has `motor_fanin` command inputs; every command has an output
    assert w.sensory[:, inter].any(axis=0).all()
    assert w.adjacency[inter, command].any(axis=0).all()
    assert (np.count_nonzero(w.adjacency[command, motor], axis=0) >= 3).all()
    assert w.adjacency[command, motor].any(axis=1).all()
    assert set(np.unique(w.adjacency)) <= {-1, 0, 1} and (w.adjacency == -1).any() and (w.adjacency == 1).any()
    w.check_layered()


def test_arrays_are_read_only_and_roundtrip():
    w = ncp_wiring(8, seed=5)
    with pytest.raises(ValueError):
        w.adjacency[0, 0] = 1
    back = Wiring.from_arrays(w.to_arrays(), w.describe())
    assert back.same_as(w) and back.kind == "ncp" and back.layer_names == ("inter", "command", "motor")
    assert back.params["seed"] == 5


def test_dense_wiring():
    w = fully_connected_wiring(5, 7, 3, seed=0)
    assert w.num_layers == 1 and w.units == 7 and w.output_size == 3
    assert np.count_nonzero(w.adjacency) == 49 and np.count_nonzero(w.sensory) == 35
    assert (w.cfc_mask(0) == 1).all()


def test_cfc_masks_strict_and_ncps():
    w = ncp_wiring(6, seed=2)
    for layer in range(3):
        size = w.layer_sizes[layer]
        strict, ncps = w.cfc_mask(layer, "default", "strict"), w.cfc_mask(layer, "default", "ncps")
        n_in = strict.shape[1] - size
        blocks = np.split(strict, 4)
        assert all((b == blocks[0]).all() for b in blocks)  # time gates masked like f1/f2
        assert (np.diag(blocks[0][:, n_in:]) == 1).all()  # own state always visible
        nb = np.split(ncps, 4)
        assert (nb[2] == 1).all() and (nb[3] == 1).all() and (nb[0][:, n_in:] == 1).all()
        assert (nb[0][:, :n_in] == blocks[0][:, :n_in]).all()


@pytest.mark.parametrize("kwargs", [dict(sensory_fanout=9), dict(motor_fanin=0), dict(inter_neurons=0),
                                    dict(recurrent_command_synapses=-1)])
def test_bad_ncp_arguments(kwargs):
    with pytest.raises(WiringError):
        ncp_wiring(4, **kwargs)


def test_inconsistent_wiring_rejected():
    with pytest.raises(WiringError):
        Wiring(np.zeros((3, 4)), np.zeros((5, 5)), (5,), 2)
    with pytest.raises(WiringError):
        Wiring(np.full((3, 5), 2), np.zeros((5, 5)), (5,), 2)
    skip = Wiring(np.ones((2, 3)) * [1, 0, 0], np.zeros((3, 3)), (1, 1, 1), 1)
    bad = np.zeros((3, 3))
    bad[0, 2] = 1  # layer 0 -> layer 2 skips a layer
    with pytest.raises(WiringError):
        Wiring(skip.sensory, bad, (1, 1, 1), 1).check_layered()
