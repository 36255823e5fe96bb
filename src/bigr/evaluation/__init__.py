"""Evaluation: image-quality metrics, the linear probe, benchmarks and recipe tuning.

Modules:
- `metrics.py`: FID, sFID, precision/recall and Inception Score as pure functions of features;
- `inception.py`, `inception_net.py`: the standard FID Inception v3 network, offline;
- `reference.py`: feature statistics of image sets (folders, tensors, ADM reference batches);
- `image_sets.py`: real images of a dataset split, class-balanced generated sets, FID entries;
- `sample_fid.py`: sampling many images for FID (sharded, resumable, multi-process);
- `inpainting.py`: the inpainting benchmark (PSNR inside the regenerated region);
- `probe.py`: linear probing of BiGR features, with baselines in the same protocol;
- `logistic.py`: multinomial logistic regression fitted to convergence (the probe's classifier);
- `intervals.py`: confidence intervals for comparisons;
- `bench.py`, `bench_train.py`, `bench_train_variants.py`: sampling and training benchmarks;
- `tune.py`: `bigr tune-recipe`, choosing a sampling recipe by FID on held-out images.

Every evaluator returns a plain dict of numbers.
"""
