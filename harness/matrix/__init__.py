"""`harness matrix`: one scenario run against several versions of its stack's server package.

Each version gets its own cached environment: a venv whose site-packages holds only the server
package(s) at that version, layered over the harness's own environment by a `.pth` file, so the
harness itself runs unchanged (in a child process started with that venv's interpreter) while the
server it starts is that version's. A stack kind names its package(s) on its settings class
(`SERVER_PACKAGES`); the matrix names no stack.
"""
