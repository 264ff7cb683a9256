"""Where Sycoscope's files live, all relative to the repository: the one home of every path."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
REFERENCE = DATA / "reference"  # small tables the project writes itself, committed
GOLD = REFERENCE / "gold"  # replies labelled by a person: how far each grader agrees (lib.measure.agreement)
DOWNLOADS = DATA / "downloads"  # official files, fetched for users, sha256-checked
EXPORTS = DATA / "exports"  # what the Data page writes
BENCH = DATA / "bench"  # the benchmarks' synthetic stores
LOGS = DATA / "logs"
DEFAULT_STORE = DATA / "sycoscope.duckdb"
PRICES = DATA / "prices.csv"
SECRETS = REPO / ".streamlit" / "secrets.toml"
