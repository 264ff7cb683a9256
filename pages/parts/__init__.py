"""What the pages share: URL state, store reads, showing data, runs in progress and the app frame."""
