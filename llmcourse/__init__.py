"""llmcourse: the helper package behind the notebook course on large language models.

The chapters import from here; every public function validates its inputs and raises
``ValueError``/``TypeError`` naming the argument at fault.

Map: chapter → the modules it imports → their tests. A module ``m`` is tested in
``tests/test_m.py`` unless another test file is named in brackets; every chapter also uses
``env``/``profiles`` (``setup``) and its checkers ``exercises.<topic>``
(``tests/test_exercises_<topic>.py``)::

    00 setup                  env, profiles, data.corpora [test_data], exercises
    01 language models        ngram, tokenizers, data.batching [test_batching],
                              widgets.next_token [test_ngram], scaling
    02 tokens and embeddings  tokenizers, data.corpora [test_data], data.batching [test_batching]
    03 attention              attention, model, tokenizers, widgets.attention, widgets.explorer,
                              widgets.renderer [test_viz; in a browser: test_browser], diagrams
                              [test_diagrams; in a browser: test_browser_diagrams]
    04 transformer and GPT    model, diagrams [test_diagrams], data.corpora [test_data]
    05 modern decoders        llama [test_llama, test_pretrain_llama], llama_hf [test_llama],
                              model, train, env, data.corpora [test_data]
    06 cross-entropy, optim.  exercises.loss (the rest is plain torch)
    07 pretraining            data.corpora [test_data, test_corpora], data.dedup [test_dedup],
                              data.quality [test_quality], data.packing [test_packing],
                              train.* [test_train; DDP/FSDP: test_ddp], pretrain, hardware,
                              model, env, widgets.training_dashboard [test_dashboard]
    08 scaling to 7B          scaling, widgets.scaling_calculator [test_scaling], ddp_demo, model,
                              data.corpora [test_data]
    09 fine-tuning            finetune, evaluate, train, model, data.corpora [test_data]
    10 post-training          align [test_align_task, test_align_sft, test_align_dpo,
                              test_align_grpo, test_align_evals, test_align_trl_path], model, train
    11 evaluation and limits  evaluate [test_evaluate], align.evals [test_align_evals], env, finetune,
                              model, data.corpora [test_data]
    12 inference              inference.bandwidth [test_inference_bandwidth],
                              inference.quantize [test_inference_quantize],
                              inference.speculative [test_inference_speculative],
                              inference.serving [test_inference_serving],
                              inference.stream [test_inference_stream], model, scaling,
                              data.corpora [test_data], widgets.chat [test_chat; in a browser:
                              test_browser_chat]

Subpackages: ``train`` (the training engine: loop, config, batches, precision, distributed,
metrics, checkpoint), ``data`` (corpora → token ids → batches), ``widgets`` (notebook figures
that work offline) and ``exercises`` (the chapters' checkers); each re-exports its public names.
"""

from llmcourse.env import env_report, get_device, seed_everything, setup
from llmcourse.profiles import PROFILE_NAMES, Profile, profile

__version__ = "0.2.0"
REPO_URL = "https://github.com/llmcourse/llmcourse"

__all__ = [
    "PROFILE_NAMES",
    "Profile",
    "REPO_URL",
    "env_report",
    "get_device",
    "profile",
    "seed_everything",
    "setup",
]
