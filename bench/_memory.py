"Peak memory of a call on the CPU, from the torch profiler's allocation events (tracemalloc cannot see torch's allocator)."
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile


def _walk(nodes):
    for n in nodes:
        yield n
        yield from _walk(n.children)


def profiler_peak(f):
    "Peak of the running sum of bytes allocated (and freed) while `f()` runs."
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p: f()
    allocs = sorted((n.start_time_ns, n.extra_fields.alloc_size)
                    for n in _walk(p.profiler.kineto_results.experimental_event_tree()) if n.tag == _EventType.Allocation)
    cur = peak = 0
    for _, a in allocs: cur += a; peak = max(peak, cur)
    return peak
