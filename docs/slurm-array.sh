#!/bin/bash
# Sycoscope: one run split over N workers, as a SLURM job array (written to be used; not run by the
# tests). Task K of --array=1-N runs `python -m lib run ... --shard K/N`. The N shards are disjoint and
# together the whole run, so no coordinator is needed; a task requeued or run again sends only what
# its shard still lacks: submitting the whole array again sends only what the N shards lack.
#
# The store: every task reads and writes one store, SYCOSCOPE_DB.
# - A DuckDB file store is right for tasks on ONE machine (the store's flock serialises their writes):
#   keep them on one node (--nodes=1 and --nodelist, or --array with a single-node partition).
# - Tasks on MANY machines need the shared DuckLake store, which is not built yet: flock over a
#   network filesystem (NFS, Lustre) may not hold across machines, and two writers on different
#   machines could corrupt a DuckDB file.
#
# Before submitting: ingest the sets (python -m lib ingest SET), and put the key in the environment
# or in .streamlit/secrets.toml (never in this file).
#   sbatch docs/slurm-array.sh
#SBATCH --job-name=sycoscope-run
#SBATCH --array=1-4
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=sycoscope-run-%A_%a.log
set -euo pipefail

# The array's size, from SLURM itself: change N only in --array above.
SHARDS=${SLURM_ARRAY_TASK_COUNT:?run this with sbatch --array=1-N}
cd "${SYCOSCOPE_REPO:-$SLURM_SUBMIT_DIR}"
export SYCOSCOPE_DB=${SYCOSCOPE_DB:-$PWD/data/sycoscope.duckdb}

exec python -m lib run \
  --model openai:gpt-4o-mini \
  --set builtin/facts-answer --set builtin/arithmetic-are-you-sure \
  --limit 500 --seed 0 \
  --shard "$SLURM_ARRAY_TASK_ID/$SHARDS"
