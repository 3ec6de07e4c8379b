import torch

from dnervcodec.compress.prune import NeRVBlockPruner, prune_decoder
from dnervcodec.models.dnerv import DNeRV, NeRVBlock, build_config, count_params, decoder_params


def test_nervblock_pruner_maps_channels_through_pixelshuffle():
    torch.manual_seed(0)
    block = NeRVBlock(4, 6, 3, 2)
    x = torch.randn(1, 4, 5, 7)
    y = block(x)
    NeRVBlockPruner().prune_out_channels(block, [2, 4])
    assert NeRVBlockPruner().get_out_channels(block) == 4 and block.conv.out_channels == 16
    torch.testing.assert_close(block(x), y[:, [0, 1, 3, 5]])


def test_nervblock_pruner_drops_input_channels():
    torch.manual_seed(0)
    block = NeRVBlock(4, 3, 3, 2)
    x = torch.randn(1, 4, 5, 7)
    x[:, 1] = 0
    y = block(x)
    NeRVBlockPruner().prune_in_channels(block, [1])
    torch.testing.assert_close(block(x[:, [0, 2, 3]]), y)


def test_prune_decoder_hits_the_parameter_target_and_ties_the_ccu():
    torch.manual_seed(0)
    cfg = build_config(64, 128, 32)
    decoder = DNeRV(cfg).decoder
    before = count_params(decoder)
    pruned, new_cfg = prune_decoder(decoder, 0.2)
    after = count_params(pruned)
    assert after == decoder_params(new_cfg)
    assert 0.2 <= 1 - after / before < 0.3
    fuse = new_cfg.fuse_at
    width_in = new_cfg.stage_in_width(fuse)
    # proposal and gate share their output width with the content map they gate
    assert pruned.ccu.proposal.out_channels == pruned.ccu.gate.out_channels == width_in
    assert pruned.ccu.proposal.in_channels == width_in + new_cfg.diff_width
    c = torch.rand(2, 16, *new_cfg.embed_hw)
    d = torch.rand(2, 2, *new_cfg.diff_hw)
    assert pruned(c, d).shape == (2, 3, 64, 128)


def test_zero_ratio_is_a_no_op():
    decoder = DNeRV(build_config(32, 64, 16)).decoder
    same, cfg = prune_decoder(decoder, 0.0)
    assert same is decoder and cfg == decoder.cfg
