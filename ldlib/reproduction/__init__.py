"""Reproducing the paper's figures and tables with notebooks: what each notebook's parameters are
(``parameters``), how ``ldlib reproduce`` runs them (``runner``), what they record (``recorder``: metrics,
claims, figures -> ``metrics.json``), the report page (``report``), figures (``plots``), the interactive panels
(``explore``), the run cache that shares trained models between notebooks (``run_cache``) and what a profile's
Table 1 runs still need from it (``plan``, ``ldlib pretrain --plan``), the paper's printed
numbers (``paper_numbers``, reference only), what the training notebooks share (``study``), and one module
per notebook with its measurements and verdicts:

    01 noise_scaling   02 schedule_shifting   03 strategic_cropping   04 model_stacking   05 table1

The top layer of ldlib: it imports from every layer below and nothing imports it but ``ldlib.cli``.
"""
