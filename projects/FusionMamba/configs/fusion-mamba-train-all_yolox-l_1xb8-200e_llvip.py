# Fusion-Mamba on LLVIP with every parameter trained: the official recipe
# (./fusion-mamba_yolox-l_1xb8-200e_llvip.py) optimises only module weights and biases, so the
# selective-scan parameters of every SS2D (x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs,
# Ds) stay at their initialisation and LayerNorm weights are decayed. Here mmengine's default
# constructor puts every parameter in the optimizer, with no weight decay on norm layers
# (BatchNorm and LayerNorm), biases, A_logs and Ds (VMamba's no-weight-decay set).
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'A_logs': dict(decay_mult=0.), 'Ds': dict(decay_mult=0.)}))
