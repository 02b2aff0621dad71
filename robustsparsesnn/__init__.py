"""Adversarially robust spiking neural networks with sparse connectivity: robust pruning, ANN-to-SNN conversion, masked adversarial finetuning, honest ensemble attacks and exact synaptic-operation counts.

Modules:

- `robustsparsesnn.cli`: One command line over the pipeline: run a configuration or a preset, a stage, a sweep, an ablation, a standalone evaluation, a paper reproduction; user errors are one line and exit status 2, bugs exit 1 with their traceback logged.
- `robustsparsesnn.pipeline`: Every stage of Algorithm 1, from pretraining to the report, in one run directory and resumable at any point; sweeps of pruning methods and sparsities, ablations and standalone evaluations of finished runs.
- `robustsparsesnn.recipes`: The experiments behind the paper's claims as recipes over resumable runs: `rsnn reproduce DATASET` runs them all, writes one small results file per recipe under `results/DATASET/`, and judges every claim by a paired test.
- `robustsparsesnn.reports`: What a run, a sweep or an ablation says, as tables, paragraphs and figures: every function here reads result files (dicts), never a model, so the README and the notebooks render the same text from `results/`."""

__version__ = "0.0.1"
