"""Hypothesis profiles. `ci` (the default, what `make test` runs) is derandomised: the same examples on every run, so
the suite's verdict never depends on a random search; counterexamples found earlier are kept as explicit `@example`s.
`explore` (`make test-explore`) searches with fresh seeds, `RSNN_EXPLORE_SCALE` (default 10) times more examples per
property, and keeps what it finds in .hypothesis/ so a failure replays."""
import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

settings.register_profile('ci', derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile('explore', derandomize=False, deadline=None, print_blob=True,
                          database=DirectoryBasedExampleDatabase('.hypothesis/examples'),
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get('HYPOTHESIS_PROFILE', 'ci')
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(config, items):
    "Under `explore`, run only the properties, each with more examples and a random search, whatever its own `@settings` say."
    if config.getoption('hypothesis_profile', None) != 'explore' and PROFILE != 'explore': return
    scale = int(os.environ.get('RSNN_EXPLORE_SCALE', '10'))
    keep = []
    for item in items:
        f = getattr(item, 'obj', None)
        if not getattr(f, 'is_hypothesis_test', False): continue
        own = f._hypothesis_internal_use_settings
        f._hypothesis_internal_use_settings = settings(own, max_examples=own.max_examples * scale, derandomize=False,
                                                       database=settings.get_profile('explore').database)
        keep.append(item)
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
