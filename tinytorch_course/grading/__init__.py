"""Grading, in the order a submission meets it: `course` (where it is), `pipeline` (nbgrader's preprocessors),
`sandbox` (its kernel), `worker` (one submission executed and judged), `record` (the single gradebook writer),
`autograde` (a batch, fed by `pool` on this machine or `dask_pool` on a cluster)."""
