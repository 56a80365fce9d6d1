"""What threads of one process must not do at the same time.

A server runs model work on two threads at once (queries, and an upload's ingestion). Models are
read-only in inference and safe to share, but a Hugging Face fast tokenizer is not: a call that sets
other padding or truncation than the previous one mutates the Rust tokenizer, and a second thread
inside it then fails with "RuntimeError: Already borrowed". Tokenizing is a small part of a forward,
so every tokenizer call of ours takes one process-wide lock.
"""

from __future__ import annotations

import threading

TOKENIZER_LOCK = threading.RLock()
