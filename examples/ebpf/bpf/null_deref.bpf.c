// SPDX-License-Identifier: GPL-2.0
// Deliberately wrong: uses a map lookup's result without checking it for NULL.
// The verifier refuses to load it ("invalid mem access 'map_value_or_null'").
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int count_exec(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counter, &key);

	*count += 1; /* missing: if (!count) return 0; */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
