"""The sweeps (SPEC 3): scheduled jobs that apply the desk's timeouts.

* ``jobs``: each job's eligibility, written once as named SQL conditions that
  the counting queries, the batch claims, the re-check inside the UPDATE and
  ``sweep explain`` all share;
* ``locking``: one run at a time per job and shard (advisory lock or lease);
* ``runner``: keyset batches, one transaction each, the sweep-run record;
* ``explain``: why a chat would or would not be touched;
* ``metrics``: the Prometheus textfile.
"""

from chatctl.vocabulary import SWEEP_JOBS

JOB_ORDER = SWEEP_JOBS
