"""The kernel as a test oracle: an overlayfs mount, or a plain directory.

Run as root inside a private mount namespace (`unshare -m python3 kernel-oracle.py`). For each
sequence it either mounts an overlay of the given lowers (colon-separated, top first) with
redirect_dir=on,index=on over a tmpfs upper, or takes a directory as it is (a Docker container's
layer, an unpacked tar). A child chrooted into it (so that no symlink can reach the host) applies
one file operation per JSON line on stdin, answering one JSON line each: {"ok": ...} or
{"errno": "ENOENT"}.
"""
import base64
import errno
import json
import os
import shutil
import stat
import subprocess
import sys


ROOT = '/run/strata-oracle'
LOWERS = ''
LAYERS = 0


def mount(lowers):
    """A fresh overlay of `lowers` at ROOT/merged, over an empty tmpfs upper."""
    if os.path.ismount(f'{ROOT}/merged'):
        subprocess.run(['umount', f'{ROOT}/merged'], check=True)
    if os.path.ismount(ROOT):
        subprocess.run(['umount', ROOT], check=True)
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', ROOT], check=True)
    for name in ('upper', 'work', 'merged'):
        os.mkdir(os.path.join(ROOT, name))
    # The merged root shows the upper root's mode: 0755, as Docker makes it.
    os.chmod(f'{ROOT}/upper', 0o755)
    global LOWERS, LAYERS
    LOWERS, LAYERS = lowers, 0
    overlay()


def fork():
    """The mounted overlay's upper becomes its top lower, under a fresh upper: a fork's view."""
    global LOWERS, LAYERS
    subprocess.run(['umount', f'{ROOT}/merged'], check=True)
    LAYERS += 1
    os.rename(f'{ROOT}/upper', f'{ROOT}/layer-{LAYERS}')
    shutil.rmtree(f'{ROOT}/work')
    for name in ('upper', 'work'):
        os.mkdir(os.path.join(ROOT, name))
    os.chmod(f'{ROOT}/upper', 0o755)
    LOWERS = f'{ROOT}/layer-{LAYERS}:{LOWERS}'
    overlay()


def overlay():
    options = f'lowerdir={LOWERS},upperdir={ROOT}/upper,workdir={ROOT}/work,redirect_dir=on,index=on'
    subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o', options, f'{ROOT}/merged'], check=True)


def kind(mode):
    if stat.S_ISDIR(mode):
        return 'dir'
    if stat.S_ISLNK(mode):
        return 'symlink'
    if stat.S_ISREG(mode):
        return 'file'
    return 'other'


def describe(path, st):
    entry = {
        'path': path,
        'type': kind(st.st_mode),
        'mode': stat.S_IMODE(st.st_mode),
        'uid': st.st_uid,
        'gid': st.st_gid,
        'mtimeNs': str(st.st_mtime_ns),
        'ino': st.st_ino,
        'nlink': st.st_nlink,
    }
    if entry['type'] == 'file':
        entry['size'] = st.st_size
        with open(path, 'rb') as f:
            entry['content'] = base64.b64encode(f.read()).decode()
    elif entry['type'] == 'symlink':
        entry['target'] = os.readlink(path)
    return entry


def tree():
    out = []

    def walk(directory):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            out.append(describe(path, st))
            if stat.S_ISDIR(st.st_mode):
                walk(path)

    walk('/')
    return out


def write(path, data, flags):
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def remove(path, recursive):
    if stat.S_ISDIR(os.lstat(path).st_mode):
        if recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)
    else:
        os.unlink(path)


def read(path):
    with open(path, 'rb') as f:
        return base64.b64encode(f.read()).decode()


def apply(op):
    name = op['op']
    path = op.get('path')
    data = base64.b64decode(op.get('data', ''))
    if name == 'write':
        write(path, data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    elif name == 'pwrite':
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, op['offset'])
        finally:
            os.close(fd)
    elif name == 'append':
        write(path, data, os.O_WRONLY | os.O_APPEND)
    elif name == 'truncate':
        os.truncate(path, op['size'])
    elif name == 'remove':
        remove(path, op.get('recursive', False))
    elif name == 'mkdir':
        os.mkdir(path, 0o755)
    elif name == 'rename':
        os.rename(op['from'], op['to'])
    elif name == 'symlink':
        os.symlink(op['target'], path)
    elif name == 'link':
        # Strata's decision: a symlink is linked as a copy of itself (see the README).
        existing = op['existing']
        if os.path.islink(existing):
            os.symlink(os.readlink(existing), path)
        else:
            os.link(existing, path, follow_symlinks=False)
    elif name == 'chmod':
        os.chmod(path, op['mode'])
    elif name == 'chown':
        os.chown(path, op['uid'], op['gid'])
    elif name == 'utimes':
        ns = op['mtime'] * 1_000_000
        os.utime(path, ns=(ns, ns))
        return str(os.stat(path).st_mtime_ns)
    elif name == 'read':
        return read(path)
    elif name == 'stat':
        return describe(path, os.stat(path))
    elif name == 'tree':
        return tree()
    else:
        raise ValueError(f'unknown operation {name}')
    return True


def reply(answer):
    sys.stdout.write(json.dumps(answer) + '\n')
    sys.stdout.flush()


def serve(root):
    """One sequence, chrooted in `root`, until {"op": "end"}."""
    os.chroot(root)
    os.chdir('/')
    reply({'ok': 'ready'})
    for line in iter(sys.stdin.readline, ''):
        op = json.loads(line)
        if op['op'] == 'end':
            reply({'ok': True})
            return
        try:
            reply({'ok': apply(op)})
        except OSError as e:
            reply({'errno': errno.errorcode.get(e.errno, str(e.errno))})
        except Exception as e:  # a bug here must answer, not leave the caller waiting
            reply({'errno': f'ORACLE: {e!r}'})


def main():
    # Each {"op": "start", "lowers": ...} gets a fresh mount ({"op": "start", "root": ...} a
    # directory as it is, {"op": "start", "fork": true} the last mount's upper as its top lower) and a chrooted child that serves the sequence: one process and
    # namespace for a whole run instead of one per sequence.
    subprocess.run(['mount', '--make-rprivate', '/'], check=True)
    os.makedirs(ROOT, exist_ok=True)
    os.umask(0)
    for line in iter(sys.stdin.readline, ''):
        op = json.loads(line)
        if op['op'] != 'start':
            reply({'errno': 'EPROTO'})
            continue
        if 'root' in op:
            root = op['root']
        elif op.get('fork'):
            fork()
            root = f'{ROOT}/merged'
        else:
            mount(op['lowers'])
            root = f'{ROOT}/merged'
        child = os.fork()
        if child == 0:
            try:
                serve(root)
            finally:
                os._exit(0)
        os.waitpid(child, 0)


main()
