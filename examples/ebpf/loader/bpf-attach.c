// bpf-attach OBJECT PIN_DIR: loads a BPF object file, attaches each of its
// programs where its SEC() says, and pins the links and maps under PIN_DIR
// (a bpffs directory), so they stay after this exits. `rm -r PIN_DIR`
// detaches them. On a verifier rejection libbpf prints the verifier's log
// to stderr and this exits 1.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	char path[4096];
	int err;

	if (argc != 3) {
		fprintf(stderr, "usage: %s OBJECT PIN_DIR\n", argv[0]);
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "bpf-attach: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "bpf-attach: the kernel refused to load %s: %s\n", argv[1], strerror(-err));
		return 1;
	}
	err = bpf_object__pin_maps(obj, argv[2]);
	if (err) {
		fprintf(stderr, "bpf-attach: cannot pin the maps under %s: %s\n", argv[2], strerror(-err));
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link = bpf_program__attach(prog);

		if (!link) {
			fprintf(stderr, "bpf-attach: cannot attach %s: %s\n", bpf_program__name(prog), strerror(errno));
			return 1;
		}
		snprintf(path, sizeof(path), "%s/link_%s", argv[2], bpf_program__name(prog));
		err = bpf_link__pin(link, path);
		if (err) {
			fprintf(stderr, "bpf-attach: cannot pin %s: %s\n", path, strerror(-err));
			return 1;
		}
	}
	return 0;
}
