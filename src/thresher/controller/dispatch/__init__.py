"""Dispatch in the controller: which tasks go to which worker's lanes.

- `index`: the dispatch index, the store's snapshot kept in memory as the views of
  `core.dispatch`, counted forward between rebuilds;
- `claim`: the claim over it, ranking blocks for each lane and claiming through the store,
  and preemption;
- `views`: the pure conversions of the snapshot's records into those views.
"""

from thresher.controller.dispatch.claim import Dispatch, Dispatcher
from thresher.controller.dispatch.index import DispatchIndex
from thresher.controller.dispatch.views import block_policy

__all__ = ["Dispatch", "DispatchIndex", "Dispatcher", "block_policy"]
