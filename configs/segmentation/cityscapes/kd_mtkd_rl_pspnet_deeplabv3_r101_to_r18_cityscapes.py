# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MTKD-RL (deterministic
# policy; the first pass over the training set, len(train_dataloader) iterations, is a
# warm-up of summed teacher terms; agent updates every 1000 iterations and at each
# pass's end).
_base_ = '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py'
model = dict(weighting=dict(type='RLAgentWeighting', policy=dict(type='DeterministicPolicy'),
                            warmup_epochs=1))
custom_hooks = [dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000)]
