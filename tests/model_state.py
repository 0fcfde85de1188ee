"""What a function that runs a model must give back: checked by the tests of xai_lab.evaluate."""
import torch


def model_state(model):
    """What a metric must give back: every tensor of the state, modes, requires_grad, no hooks."""
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


def assert_same_state(model, before):
    state, modes, flags = before
    now = model.state_dict()
    assert now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
