"""One module per step, each exposing ``run(cfg, *, inputs..., out_dir) -> <Name>Result``.

Heavy libraries (pandas, torch, transformers, great_expectations, evidently, mlflow) are imported
only inside these modules, never by DAG files at parse time.
"""
