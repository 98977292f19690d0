"""DGP parity: the official code vs ganprior, same network, target, start z, class and random draws (issue 22).

The official code is not part of this repository: fetch XingangPan/deep-generative-prior@c503a56 into a scratch
directory (``DGP_OFFICIAL``, default /tmp/fiddgp/official; ``data/ILSVRC2012_val_00001970.JPEG`` and ``..._00003004.JPEG`` as img1.jpg, img2.jpg in ``DGP_IMAGES``) and run
    python bench/dgp_official_parity.py TASK DTYPE STEPS_PER_STAGE
TASK: colorize inpaint sr-d sr-mse jitter transfer morph; DTYPE: f64 | f32. Prints one JSON line: step-0 loss of
both, the largest relative loss difference over all steps, the final image difference and, for the
manipulations, the largest difference of their images. Only shims wrap the official code (.cuda() no-op, CPU
torch.load, PIL ANTIALIAS, skimage's removed compare_* metrics); results in docs/fidelity.md (DGP section).
"""
import json
import os
import sys
import time

import numpy as np
import torch

OFF = os.environ.get('DGP_OFFICIAL', '/tmp/fiddgp/official')
IMAGES = os.environ.get('DGP_IMAGES', '/tmp/fiddgp/work')
FIX = os.environ.get('DGP_FIXTURE', os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'fixtures', 'official', 'biggan_128'))
# --- shims so the unmodified official code runs on CPU with today's libraries -------------------
import skimage.measure

skimage.measure.compare_psnr = lambda a, b: 0.0   # per-step metrics only (not in the objective)
skimage.measure.compare_ssim = lambda a, b, multichannel=True: 0.0
from PIL import Image

Image.ANTIALIAS = Image.LANCZOS
torch.Tensor.cuda = lambda self, *a, **k: self
torch.nn.Module.cuda = lambda self, *a, **k: self
_load = torch.load
torch.load = lambda f, map_location=None, **k: _load(f, map_location='cpu', weights_only=False)
sys.path.insert(0, OFF)
import models
import utils  # official

# The official SR target path returns float32 (utils.pil_to_np); cast to the default dtype so the float64 run can
# proceed (float32 values are exact in float64; only the dtype changes).
_np_to_torch = utils.np_to_torch
utils.np_to_torch = lambda a: _np_to_torch(a).to(torch.get_default_dtype())

TASK, DT, PER = sys.argv[1], sys.argv[2], int(sys.argv[3])
dtype = torch.float64 if DT == 'f64' else torch.float32
torch.cuda.FloatTensor = torch.DoubleTensor if dtype == torch.float64 else torch.FloatTensor

# the released scripts' arguments (experiments/imagenet1k_128/*/train.sh, experiments/examples/run_*.sh)
SCRIPTS = {
    'colorize': dict(mode='colorization', args='--update_G --ftr_num 7 7 7 7 7 --ft_num 2 3 4 5 6 --lr_ratio 0.7 0.7 0.8 0.9 1 --w_D_loss 1 1 1 1 1 --w_nll 0.02 --w_mse 0 0 0 0 0 --select_num 500 --sample_std 0.5 --G_lrs 5e-5 5e-5 5e-5 5e-5 2e-5 --z_lrs 2e-3 1e-3 5e-4 5e-5 2e-5 --use_in False False False False False', n=5, schedule='colorize'),
    'inpaint': dict(mode='inpainting', args='--update_G --update_embed --ftr_num 8 8 8 8 8 --ft_num 6 6 6 6 6 --lr_ratio 1 1 1 1 1 --w_D_loss 1 1 1 0.1 0.1 --w_nll 0.02 --w_mse 10 10 10 100 100 --select_num 500 --sample_std 0.3 --G_lrs 2e-4 2e-4 1e-4 1e-4 1e-5 --z_lrs 1e-3 1e-3 1e-4 1e-4 1e-5 --use_in True True True True True', n=5, schedule='inpaint'),
    'sr-d': dict(mode='SR', args='--update_G --ftr_num 8 8 8 8 8 --ft_num 2 3 4 5 6 --lr_ratio 1 1 1 1 1 --w_D_loss 1 1 1 1 1 --w_nll 0.02 --w_mse 1 1 1 1 1 --select_num 500 --sample_std 0.3 --G_lrs 5e-5 5e-5 2e-5 1e-5 1e-5 --z_lrs 2e-3 1e-3 2e-5 1e-5 1e-5 --use_in False False False False False', n=5, schedule='sr-d'),
    'sr-mse': dict(mode='SR', args='--update_G --ftr_num 8 8 8 8 8 --ft_num 2 3 4 5 6 --lr_ratio 1 1 1 1 1 --w_D_loss 1 1 1 0.5 0.1 --w_nll 0.02 --w_mse 10 10 10 50 100 --select_num 500 --sample_std 0.3 --G_lrs 2e-4 2e-4 1e-4 1e-4 1e-5 --z_lrs 1e-3 1e-3 1e-4 1e-4 1e-5 --use_in True True True True True', n=5, schedule='sr-mse'),
    'jitter': dict(mode='jitter', args='--update_G --ftr_num 8 8 8 --ft_num 8 8 8 --lr_ratio 1 1 1 --w_D_loss 1 1 1 --w_nll 0.2 --w_mse 0 0 0 --select_num 500 --sample_std 0.5 --G_lrs 2e-7 2e-5 2e-6 --z_lrs 1e-1 1e-2 2e-4 --use_in False False False', n=3, schedule='manipulation'),
    'transfer': dict(mode='category_transfer', args='--update_G --ftr_num 8 8 8 --ft_num 7 7 7 --lr_ratio 1 1 1 --w_D_loss 1 1 1 --w_nll 0.2 --w_mse 0 0 0 --select_num 500 --sample_std 0.5 --G_lrs 2e-7 2e-5 2e-6 --z_lrs 1e-1 1e-2 2e-4 --use_in False False False', n=3, schedule='manipulation'),
    'morph': dict(mode='morphing', args='--update_G --update_embed --ftr_num 8 8 8 --ft_num 8 8 8 --lr_ratio 1 1 1 --w_D_loss 1 1 1 --w_nll 0.2 --w_mse 0 0 0 --select_num 500 --sample_std 0.5 --G_lrs 2e-7 2e-5 2e-6 --z_lrs 1e-1 1e-2 2e-4 --use_in False False False', n=3, schedule='manipulation'),
}
S = SCRIPTS[TASK]
fixture_argv = json.load(open(f'{FIX}/config.json'))['argv']
base = []
skip = False
for a in fixture_argv:  # keep the architecture arguments of the fixture, drop its DGP-mode ones
    if a.startswith('--'):
        skip = a in ('--dgp_mode', '--ftr_num', '--ft_num', '--update_G', '--weights_root')
    if not skip:
        base.append(a)
argv = base + ['--skip_init', '--weights_root', FIX, '--dgp_mode', S['mode'], '--iterations'] + [str(PER)] * S['n'] \
    + S['args'].split() + ['--exp_path', os.path.join(IMAGES, 'exp')]
os.makedirs(os.path.join(IMAGES, 'exp', 'images_sheet'), exist_ok=True)
os.makedirs(os.path.join(IMAGES, 'exp', 'images'), exist_ok=True)
parser = utils.add_dgp_parser(utils.prepare_parser())
config = vars(parser.parse_args(argv))
utils.dgp_update_config(config)

# --- records ---------------------------------------------------------------------------------------
REC = {'on': False, 'loss': [], 'saved': {}}
_backward = torch.Tensor.backward
def backward(self, *a, **k):
    if REC['on'] and self.numel() == 1:
        REC['loss'].append(float(self))
    return _backward(self, *a, **k)
torch.Tensor.backward = backward
utils.save_img = lambda image, path: REC['saved'].__setitem__(os.path.basename(path), image.detach().clone())

torch.set_default_dtype(dtype)
CLS, CLS2 = 12, 12
img1 = utils.get_img(f'{IMAGES}/img1.jpg', 128).to(dtype)
img2 = utils.get_img(f'{IMAGES}/img2.jpg', 128).to(dtype)
g = torch.Generator().manual_seed(7)
z0 = (0.3 * torch.randn(1, 120, generator=g)).to(dtype)
z1 = (0.3 * torch.randn(1, 120, generator=g)).to(dtype)


def official_run(img, cls, z, name):
    dgp = models.DGP(config)
    dgp.set_target(img, torch.tensor([cls]), f'x/{name}.jpg')
    with torch.no_grad():
        dgp.z.copy_(z)
    REC['loss'], REC['on'] = [], True
    dgp.run()
    REC['on'] = False
    return dgp, list(REC['loss']), REC['saved'][f'{name}_{S["mode"]}.png'][None]


# --- ganprior ----------------------------------------------------------------------------------------
from ganprior import manipulation as M
from ganprior.degradations import SuperResolution, center_box_mask, parse_task
from ganprior.methods.dgp import DGP, Selection
from ganprior.models.biggan import load_biggan

prior = load_biggan(f'{FIX}/G_ema_128.pth', f'{FIX}/D_128.pth').to(dtype).eval()


def ours_run(img, cls, z, **extra):
    weight = None
    if TASK == 'colorize':
        deg = parse_task('colorize')
        obs = deg(img)
    elif TASK == 'inpaint':
        deg = parse_task('inpaint', mask=center_box_mask((128, 128)))
        obs, weight = deg(img), deg.valid_mask((128, 128)).to(dtype)
    elif TASK.startswith('sr'):
        deg = SuperResolution(4, 'dgp-lanczos2')
        if os.environ.get('TAPS64'):  # ganprior stores the taps in float32, as the official .type(torch.cuda.FloatTensor)
            from ganprior.degradations import dgp_lanczos2_taps
            deg.taps = dgp_lanczos2_taps(4)
        obs = deg.degrade(img)
        if os.environ.get('OBS64'):  # diagnostic: the same uint8 PIL observation, mapped to [-1, 1] in float64
            arr = np.clip(((img[0].permute(1, 2, 0).numpy() + 1) / 2) * 255, 0, 255).astype(np.uint8)
            low = np.asarray(Image.fromarray(arr).resize((32, 32), Image.LANCZOS), dtype=np.float32) / 255.
            obs = torch.from_numpy(low).permute(2, 0, 1)[None].to(dtype) * 2 - 1
    else:
        deg = parse_task('reconstruct')
        obs = img
    opts = dict(schedule=S['schedule'], table='official', stage_iterations=[PER] * S['n'], select_num=0, **extra)
    if TASK == 'morph':
        opts['update_embed'] = True
    method = DGP(**opts)
    start = method.begin(prior, deg, obs, weight, cls, 0, False, 0)
    res = method.complete(prior, start, Selection(z[:, None], cls, 0.0, False))
    return res, [r['loss'] for r in res.losses]


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


out = {'task': TASK, 'dtype': DT, 'steps': PER * S['n'], 'taps64': bool(os.environ.get('TAPS64')), 'obs64': bool(os.environ.get('OBS64'))}
t = time.time()
dgp, off_losses, off_img = official_run(img1, CLS, z0, 'a')
res, our_losses = ours_run(img1, CLS, z0)
out.update(official_step0=off_losses[0], ours_step0=our_losses[0], n_official=len(off_losses), n_ours=len(our_losses),
           max_rel_loss=rel(our_losses, off_losses), final_image_max_abs=float((res.image - off_img.clamp(-1, 1)).abs().max()))
if os.environ.get('YARDSTICK'):  # the official code's own drift under a 1e-3 grey-level change of the target
    noise = torch.rand(img1.shape, generator=torch.Generator().manual_seed(11)).to(dtype) * 2 - 1
    _, off_losses_p, _ = official_run(img1 + noise * 1e-3 * 2 / 255, CLS, z0, 'p')
    out['yardstick_max_rel'] = rel(off_losses_p, off_losses)
if os.environ.get('THREADS_YARDSTICK'):  # the official code against itself on 2 threads (another reduction order)
    torch.set_num_threads(2)
    _, off_losses_t, _ = official_run(img1, CLS, z0, 't')
    torch.set_num_threads(1)
    out['threads_yardstick_max_rel'] = rel(off_losses_t, off_losses)
rec = M.Reconstruction.from_result(res)
if TASK == 'jitter':
    # same random draws: the official jitter fills z_rand.normal_() once per image (models/dgp.py:388); feed it the
    # vectors ganprior's jitter draws (one seeded generator, 30 per std, in order)
    gen = torch.Generator().manual_seed(3)
    queue = [v for _ in range(3) for v in torch.randn(30, 120, generator=gen).to(dtype)]
    _normal = torch.Tensor.normal_
    def normal_(self, *a, **k):
        if not a and not k and tuple(self.shape) == (1, 120):
            return self.copy_(queue.pop(0)[None])
        return _normal(self, *a, **k)
    torch.Tensor.normal_ = normal_
    dgp.jitter(off_img)  # official: 3 x 30 images, rendered with BN
    torch.Tensor.normal_ = _normal
    assert not queue
    ours = M.jitter(prior, rec, n=30, seed=3)
    off = torch.cat([REC['saved'][f'std{s:.1f}_{i}.jpg'][None] for s in (0.3, 0.5, 0.7) for i in range(30)])
    out['manip_max_abs'] = float((ours - off.clamp(-1, 1)).abs().max())
elif TASK == 'transfer':
    classes = [151, 200, 293]
    with torch.no_grad():  # example.py:61-66
        off = torch.cat([dgp.G(dgp.z, dgp.G.shared(dgp.y.fill_(i))) for i in classes])
    ours = M.transfer(prior, rec, classes)
    out['manip_max_abs'] = float((ours - off.clamp(-1, 1)).abs().max())
elif TASK == 'morph':
    dgp2, off_losses2, _ = official_run(img2, CLS2, z1, 'b')
    res2, our_losses2 = ours_run(img2, CLS2, z1)
    out['max_rel_loss_b'] = rel(our_losses2, off_losses2)
    from collections import OrderedDict
    dgp_interp = models.DGP(config)
    w1, w2 = dgp.G.state_dict(), dgp2.G.state_dict()
    frames = []
    with torch.no_grad():  # example.py:85-96
        for i in range(11):
            alpha = i / 10
            z_interp = alpha * dgp.z + (1 - alpha) * dgp2.z
            y_interp = alpha * dgp.G.shared(dgp.y) + (1 - alpha) * dgp2.G.shared(dgp2.y)
            dgp_interp.G.load_state_dict(OrderedDict((k, alpha * v + (1 - alpha) * w2[k]) for k, v in w1.items()))
            frames.append(dgp_interp.G(z_interp, y_interp))
    off = torch.cat(frames)
    ours = M.morph(prior, rec, M.Reconstruction.from_result(res2))
    out['manip_max_abs'] = float((ours - off.clamp(-1, 1)).abs().max())
    out['note'] = 'official saves z/G one update after its image; ganprior keeps the state of the image'
out['seconds'] = round(time.time() - t, 1)
print(json.dumps(out))
