"""Limits on what one GraphQL document may ask for: depth, aliases, tokens and cost.

Depth, aliases and tokens use strawberry's limiters. The cost limit is a graphql-core validation
rule (:func:`cost_rule`) that walks each operation with fragments expanded and prices it with
:mod:`novamind.gateway.domain.cost`; it is built per operation so that a page size given as a
variable is priced at its value. An operation over the limit fails validation with
``extensions.code`` ``QUERY_TOO_COMPLEX`` naming its cost and the limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter, SchemaExtension

from novamind.gateway.config import GatewaySettings
from novamind.gateway.domain.cost import field_cost, page_multiplier

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"

_ROOT_TYPES = {
    OperationType.QUERY: "query_type",
    OperationType.MUTATION: "mutation_type",
    OperationType.SUBSCRIPTION: "subscription_type",
}


class _Pricer:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_page_size: int,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._variables = variables
        self._default_page_size = default_page_size

    def _first(self, node: FieldNode) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                given = self._variables.get(value.name.value)
                return given if isinstance(given, int) else None
        return None

    def selection_cost(
        self, selection_set: SelectionSetNode | None, parent: Any, visiting: frozenset[str] = frozenset()
    ) -> int:
        if selection_set is None or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name.startswith("__"):
                    continue
                definition = parent.fields.get(name)
                child_type = get_named_type(definition.type) if definition is not None else None
                own = field_cost(parent.name, name)
                repeat = page_multiplier(parent.name, name, self._first(selection), self._default_page_size)
                total += own + repeat * self.selection_cost(selection.selection_set, child_type, visiting)
            elif isinstance(selection, InlineFragmentNode):
                target: Any = parent
                if selection.type_condition is not None:
                    target = self._schema.get_type(selection.type_condition.name.value) or parent
                total += self.selection_cost(selection.selection_set, target, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self._fragments.get(name)
                if fragment is None or name in visiting:
                    continue  # unknown or cyclic: graphql-core's own rules report those
                condition: Any = self._schema.get_type(fragment.type_condition.name.value) or parent
                total += self.selection_cost(fragment.selection_set, condition, visiting | {name})
        return total

    def operation_cost(self, operation: OperationDefinitionNode) -> int:
        root = getattr(self._schema, _ROOT_TYPES[operation.operation])
        return self.selection_cost(operation.selection_set, root)


def operation_costs(
    schema: GraphQLSchema,
    document_definitions: Any,
    *,
    variables: Mapping[str, Any] | None = None,
    default_page_size: int = 50,
) -> dict[str, int]:
    """The cost of each operation in a parsed document, by operation name (``""`` if anonymous)."""
    fragments = {d.name.value: d for d in document_definitions if isinstance(d, FragmentDefinitionNode)}
    pricer = _Pricer(schema, fragments, variables or {}, default_page_size)
    return {
        (d.name.value if d.name else ""): pricer.operation_cost(d)
        for d in document_definitions
        if isinstance(d, OperationDefinitionNode)
    }


def cost_rule(max_cost: int, *, variables: Mapping[str, Any], default_page_size: int) -> type[ValidationRule]:
    """A validation rule refusing operations that cost more than ``max_cost``."""

    class QueryCostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            costs = operation_costs(
                context.schema,
                context.document.definitions,
                variables=variables,
                default_page_size=default_page_size,
            )
            for name, cost in costs.items():
                if cost > max_cost:
                    which = f"operation {name}" if name else "the operation"
                    context.report_error(
                        GraphQLError(
                            f"{which} costs {cost}, above the limit of {max_cost}; ask for fewer "
                            "patients (first) or fewer model-backed fields",
                            extensions={"code": QUERY_TOO_COMPLEX, "cost": cost, "limit": max_cost},
                        )
                    )

    return QueryCostRule


class QueryCostLimiter(SchemaExtension):
    """Adds :func:`cost_rule`, priced with this operation's variables, to validation."""

    def __init__(self, max_cost: int, *, default_page_size: int) -> None:
        self.max_cost = max_cost
        self.default_page_size = default_page_size

    def on_operation(self) -> Iterator[None]:
        rule = cost_rule(
            self.max_cost,
            variables=self.execution_context.variables or {},
            default_page_size=self.default_page_size,
        )
        self.execution_context.validation_rules = (*self.execution_context.validation_rules, rule)
        yield


def limit_extensions(settings: GatewaySettings) -> list[Callable[[], SchemaExtension]]:
    """The document limits of ``settings``, as factories of strawberry schema extensions (one
    fresh extension per operation, so concurrent operations never share state)."""
    return [
        functools.partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        functools.partial(QueryDepthLimiter, max_depth=settings.max_query_depth),
        functools.partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases),
        functools.partial(
            QueryCostLimiter, settings.max_query_cost, default_page_size=settings.default_page_size
        ),
    ]
