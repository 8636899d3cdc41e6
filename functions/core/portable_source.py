"""Python source made runnable by the oldest interpreters a trial image may bring.

The TensorFlowEvent collector's reader (:mod:`functions.core.tfevents`) runs on a cluster inside
the trial's container, on the image's own Python: TensorFlow 1.15 and 2.0-2.3 images ship
Python 3.6, which reads neither ``from __future__ import annotations`` (3.7) nor annotations
such as ``str | None`` or ``list[int]`` evaluated at import. :func:`portable` gives the source
without them (and without docstrings, which only lengthen the container's command), written
back by :func:`ast.unparse`: the code that runs is the code katuna runs itself.
"""

from __future__ import annotations

import ast


class _Strip(ast.NodeTransformer):
    """Removes annotations, ``from __future__`` imports and docstrings."""

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        return None if node.module == "__future__" else node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        return self._undocumented(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._undocumented(node)

    def visit_Module(self, node: ast.Module) -> ast.AST:
        return self._undocumented(node)

    def _undocumented(self, node: ast.FunctionDef | ast.ClassDef | ast.Module) -> ast.AST:
        """The node visited, with its docstring and the strings after statements (attribute
        docstrings) left out; a body left empty holds ``pass``."""
        self.generic_visit(node)
        body = [statement for statement in node.body
                if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                        and isinstance(statement.value.value, str))]
        node.body = body or [ast.Pass()]
        return node


def portable(source: str) -> str:
    """``source`` (a module of the standard library's imports only) as Python 3.6 reads and runs
    it: no annotations, no ``from __future__`` import, no docstrings."""
    return ast.unparse(ast.fix_missing_locations(_Strip().visit(ast.parse(source))))
