"""The "Python 3 (pplkernel)" kernel: IPython's kernel with the pplkernel extension loaded.

The kernelspec (``share/jupyter/kernels/pplkernel/kernel.json``, installed by ``pip install``)
runs ``python -m pplkernel.kernel_launcher -f {connection_file}``; Jupyter replaces ``python``
with the interpreter it runs under.
"""

from __future__ import annotations


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(extensions=["pplkernel"])


if __name__ == "__main__":
    main()
