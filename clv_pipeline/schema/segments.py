"""Tables of the segments stage (every builder in :mod:`clv_pipeline.segments` conforms to one).

``purchase_gaps`` is a helper frame, not published; the others are snapshot tables.
"""

from __future__ import annotations

import polars as pl

from clv_pipeline.schema.contract import AS_OF, CUSTOMER_KEY, Column, Table

PURCHASE_GAPS = Table(
    "purchase_gaps",
    "as_of",
    "Helper (not published): the last two purchase-days per customer and the rhythm before the "
    "latest gap, from validated_transactions.",
    CUSTOMER_KEY
    + (
        Column("first_purchase_day", pl.Date(), "First purchase-day."),
        Column("last_purchase_day", pl.Date(), "Latest purchase-day."),
        Column(
            "previous_purchase_day",
            pl.Date(),
            "Purchase-day before the latest one; null for one purchase-day.",
            nullable=True,
        ),
        Column(
            "last_gap_days",
            pl.Int64(),
            "last_purchase_day - previous_purchase_day; null for one purchase-day.",
            "days",
            True,
        ),
        Column(
            "prior_interval_days",
            pl.Float64(),
            "Mean gap between purchase-days before the latest gap = (previous_purchase_day - "
            "first_purchase_day) / (purchase-days - 2); null with fewer than 3 purchase-days.",
            "days",
            True,
        ),
    ),
)

CUSTOMER_SEGMENTS = Table(
    "customer_segments",
    "as_of",
    "RFM scores and named RFM segment, value tier by CLV rank, lifecycle stage from the "
    "customer's own purchase rhythm, and the tier x lifecycle micro-segment (docs/segments.md).",
    CUSTOMER_KEY
    + (
        Column("days_since_last_purchase", pl.Int64(), "Last purchase-day to as_of.", "days"),
        Column("n_purchase_days", pl.Int64(), "Distinct purchase-days.", "count"),
        Column("total_revenue", pl.Float64(), "Net revenue to date.", "currency units"),
        Column(
            "r_score",
            pl.Int64(),
            "Recency score 1-5, 5 = most recent: dense quantile score of -days_since_last_purchase "
            "(1 + floor(5 x share of customers whose last purchase is strictly older), never "
            "skipping a score; docs/segments.md).",
            "score",
        ),
        Column(
            "f_score",
            pl.Int64(),
            "Frequency score 1-5 on n_purchase_days, dense quantile score (ties never leave a "
            "score empty); 1 = exactly the one-time buyers when there are any.",
            "score",
        ),
        Column(
            "m_score",
            pl.Int64(),
            "Monetary score 1-5 on total_revenue, dense quantile score (docs/segments.md).",
            "score",
        ),
        Column(
            "fm_score",
            pl.Int64(),
            "Deprecated (2026-12): ceil((f_score + m_score) / 2); still filled, no longer used by "
            "rfm_segment (the map is R x F).",
            "score",
        ),
        Column("rfm_score", pl.String(), "Concatenated scores, e.g. '545' (R, F, M)."),
        Column(
            "rfm_segment",
            pl.String(),
            "Named segment from the R x F map (champions and cant_lose also need m_score >= 3); "
            "includes lost; one-time buyers only in new, promising, about_to_sleep, hibernating "
            "or lost (docs/segments.md).",
        ),
        Column(
            "predicted_clv",
            pl.Float64(),
            "Model CLV over the horizon (customer_clv).",
            "currency units",
            True,
        ),
        Column("historic_clv", pl.Float64(), "Margin on revenue to date.", "currency units"),
        Column(
            "segment_value",
            pl.Float64(),
            "Value used for tiers and migration: predicted_clv, historic_clv when null.",
            "currency units",
        ),
        Column("value_basis", pl.String(), "predicted_clv or historic_clv (which one was used)."),
        Column(
            "value_rank",
            pl.Int64(),
            "Rank of segment_value, 1 = highest; ties share the best rank (min).",
            "rank",
        ),
        Column(
            "value_tier",
            pl.String(),
            "platinum (top 1%), gold (1-5%), silver (5-10%), bronze (10-25%), medium (25-50%), "
            "low (rest) by share of customers ranked strictly above.",
        ),
        Column(
            "expected_interval_days",
            pl.Float64(),
            "The customer's expected days between purchases (see interval_basis).",
            "days",
        ),
        Column(
            "interval_basis",
            pl.String(),
            "observed (3+ gaps: avg_days_between_purchases alone), shrunk (1-2 gaps: w x "
            "avg_days_between_purchases + (1 - w) x population, w = gaps / (gaps + 3)), "
            "population (no gap: median avg_days_between_purchases of repeat customers) or "
            "default (nobody repeated: 30 days).",
        ),
        Column(
            "rhythm_ratio",
            pl.Float64(),
            "days_since_last_purchase / expected_interval_days.",
            "ratio",
        ),
        Column(
            "previous_purchase_day",
            pl.Date(),
            "Purchase-day before the latest one (null: one purchase-day or not supplied).",
            nullable=True,
        ),
        Column(
            "last_gap_days",
            pl.Int64(),
            "Gap between the last two purchase-days (null: as previous_purchase_day).",
            "days",
            True,
        ),
        Column(
            "p_alive", pl.Float64(), "Model P(alive), null without a model.", "probability", True
        ),
        Column(
            "lifecycle_stage",
            pl.String(),
            "new, active, cooling, at_risk, lost or reactivated (docs/segments.md). Apart from "
            "new and reactivated, banded on customer_churn.churn_probability: active < 0.5 "
            "(risk low/medium), cooling < 0.75 (high), at_risk and lost >= 0.75 (critical); lost "
            "also needs no purchase in the last segments.active_window_days (90) days.",
        ),
        Column("micro_segment", pl.String(), "value_tier + '__' + lifecycle_stage."),
    ),
)

CUSTOMER_CHURN = Table(
    "customer_churn",
    "as_of",
    "Churn risk per customer with value at risk; sorted by value_at_risk descending.",
    CUSTOMER_KEY
    + (
        Column("days_since_last_purchase", pl.Int64(), "Last purchase-day to as_of.", "days"),
        Column("p_alive", pl.Float64(), "Model P(alive).", "probability", True),
        Column(
            "churn_probability",
            pl.Float64(),
            "churn_basis model: 1 - p_alive (the rhythm's probability when there is no model); "
            "recency: 1 - the Pareto/NBD P(alive) of a customer buying every "
            "expected_interval_days who drops out at the period churn rate "
            "(-ln(kpis.retention_rate) / active_window_days per day), given the silence "
            "(docs/metrics.md). The lifecycle stage is banded on the same number.",
            "probability",
            True,
        ),
        Column(
            "churn_basis",
            pl.String(),
            "model (the selected purchase model ranks churn) or recency (it cannot: degenerate "
            "dropout or a holdout purchases_auc below 0.55); null in partitions written before it existed.",
            nullable=True,
        ),
        Column(
            "churn_percentile",
            pl.Float64(),
            "100 x share of customers (with a probability) whose churn_probability is <= this one.",
            "percent",
            True,
        ),
        Column(
            "risk_band",
            pl.String(),
            "low < 0.25 <= medium < 0.5 <= high < 0.75 <= critical on churn_probability; "
            "unknown when it is null.",
        ),
        Column(
            "expected_next_purchase_at",
            pl.Date(),
            "Model: as_of + expected days to the next purchase (customer_clv).",
            nullable=True,
        ),
        Column(
            "expected_interval_days",
            pl.Float64(),
            "The customer's purchase rhythm (as customer_segments).",
            "days",
        ),
        Column(
            "next_purchase_due_at",
            pl.Date(),
            "Rhythm due date = last purchase-day + ceil(expected_interval_days).",
            nullable=True,
        ),
        Column(
            "days_overdue",
            pl.Int64(),
            "max(0, as_of - next_purchase_due_at); null when no due date.",
            "days",
            True,
        ),
        Column("predicted_clv", pl.Float64(), "Model CLV.", "currency units", True),
        Column(
            "value_at_risk",
            pl.Float64(),
            "value_if_retained x churn_probability: the value lost if the customer has churned "
            "(with churn_basis model, value_if_retained - value_at_risk = predicted_clv); null "
            "without a model. Before 2026-12: predicted_clv x churn_probability.",
            "currency units",
            True,
        ),
        Column(
            "value_if_retained",
            pl.Float64(),
            "predicted_clv / p_alive: the model's CLV over the horizon of this customer if they "
            "are still a customer (same horizon, discounting and margin as predicted_clv); null "
            "when p_alive is 0 or null.",
            "currency units",
            True,
        ),
    ),
)

MIGRATION_DIMENSIONS = ("rfm_segment", "value_tier", "lifecycle_stage")

SEGMENT_MIGRATION = Table(
    "segment_migration",
    "as_of",
    "Customers and value moving between segments from the previous snapshot (long format).",
    (
        AS_OF,
        Column(
            "previous_as_of",
            pl.Date(),
            "Snapshot compared with: the latest complete snapshot before as_of; null when there "
            "is none.",
            nullable=True,
        ),
        Column("dimension", pl.String(), "rfm_segment, value_tier or lifecycle_stage."),
        Column("from_value", pl.String(), "Value in the previous snapshot; 'none' when absent."),
        Column("to_value", pl.String(), "Value in this snapshot; 'none' when absent."),
        Column("customers", pl.Int64(), "Customers making this move.", "count"),
        Column(
            "value",
            pl.Float64(),
            "Sum of segment_value (predicted_clv, historic_clv when null) in this snapshot; "
            "previous snapshot's value for customers absent now.",
            "currency units",
        ),
        Column(
            "days_since_previous",
            pl.Int64(),
            "as_of - previous_as_of in days (1 = the day before; more = the moves span that many "
            "days); null without a previous snapshot.",
            "days",
            True,
        ),
    ),
)

COHORTS = Table(
    "cohorts",
    "as_of",
    "Acquisition-month cohorts (per first-purchase channel and 'all') by month since acquisition.",
    (
        AS_OF,
        Column("cohort_month", pl.Date(), "First day of the month of the first purchase-day."),
        Column(
            "channel",
            pl.String(),
            "Channel of the first purchase ('unknown' when null); 'all' = every channel.",
        ),
        Column(
            "months_since_acquisition",
            pl.Int64(),
            "Calendar months from cohort_month (0 = acquisition month).",
            "months",
        ),
        Column("cohort_customers", pl.Int64(), "Customers acquired in the cohort.", "count"),
        Column(
            "active_customers",
            pl.Int64(),
            "Cohort customers with a purchase in that month.",
            "count",
        ),
        Column(
            "retention_rate",
            pl.Float64(),
            "active_customers / cohort_customers.",
            "ratio",
        ),
        Column(
            "revenue",
            pl.Float64(),
            "Net revenue (purchases - refunds) of cohort customers in that month.",
            "currency units",
        ),
        Column(
            "cumulative_revenue_per_customer",
            pl.Float64(),
            "Cumulative revenue up to that month / cohort_customers.",
            "currency units",
        ),
        Column(
            "avg_predicted_clv",
            pl.Float64(),
            "Mean predicted_clv of the cohort's customers (null without a model).",
            "currency units",
            True,
        ),
        Column(
            "is_partial_month",
            pl.Boolean(),
            "True for the calendar month containing as_of when as_of is not its last day: the "
            "month is observed only up to as_of (see days_observed), so its activity is not "
            "comparable with full months.",
        ),
        Column(
            "days_observed",
            pl.Int64(),
            "Days of the calendar month observed up to as_of (the day of the month of as_of for "
            "the month containing it, the month's length otherwise).",
            "days",
        ),
    ),
)

UNIT_ECONOMICS = Table(
    "unit_economics",
    "as_of",
    "CAC, CLV net of margin and cost to serve, CLV - CAC and CLV:CAC per acquisition channel and "
    "cohort month ('all' = every channel). Empty when customers or acquisition_spend is absent.",
    (
        AS_OF,
        Column("cohort_month", pl.Date(), "Month of acquired_at (first day)."),
        Column("channel", pl.String(), "acquisition_channel ('unknown' when null) or 'all'."),
        Column("customers", pl.Int64(), "Customers acquired (customers table).", "count"),
        Column("spend", pl.Float64(), "Acquisition spend (0 when no spend row).", "currency units"),
        Column(
            "cac",
            pl.Float64(),
            "spend / customers; null when no customers.",
            "currency units",
            True,
        ),
        Column(
            "avg_clv",
            pl.Float64(),
            "Mean CLV per acquired customer: total_clv (historic_clv when predicted is null), "
            "0 for customers without purchases; null when no customers.",
            "currency units",
            True,
        ),
        Column(
            "avg_cost_to_serve",
            pl.Float64(),
            "Mean cost_to_serve_per_order x (orders to date + expected_purchases).",
            "currency units",
            True,
        ),
        Column(
            "avg_net_clv",
            pl.Float64(),
            "avg_clv x gross_margin - avg_cost_to_serve.",
            "currency units",
            True,
        ),
        Column(
            "clv_minus_cac",
            pl.Float64(),
            "avg_net_clv - cac.",
            "currency units",
            True,
        ),
        Column(
            "clv_cac_ratio",
            pl.Float64(),
            "avg_net_clv / cac; null when cac is 0 or null.",
            "ratio",
            True,
        ),
        Column(
            "below_benchmark",
            pl.Boolean(),
            "clv_cac_ratio < benchmark (default 3); null when the ratio is null.",
            nullable=True,
        ),
        Column(
            "new_customer_clv",
            pl.Float64(),
            "Expected CLV over the horizon of a customer acquired today (the selected model's "
            "repeat purchases of a new customer x the expected spend per purchase x margin, "
            "discounted; the first purchase is not included): from the channel's own fit with "
            "CLV_FIT_BY=acquisition_channel when it has one, else the population value; null "
            "without a selected model and spend fit.",
            "currency units",
            True,
        ),
        Column(
            "new_customer_clv_cac_ratio",
            pl.Float64(),
            "new_customer_clv / cac: what acquiring one more customer today returns per unit of "
            "CAC (>= the CLV:CAC benchmark, e.g. 3, pays back); null when either is missing.",
            "ratio",
            True,
        ),
    ),
)

KPI_COLUMNS = (
    Column("customers", pl.Int64(), "Customers with a purchase on or before as_of.", "count"),
    Column(
        "active_customers",
        pl.Int64(),
        "Customers with a purchase in the churn window: the last active_window_days days up to "
        "as_of (days_since_last_purchase < active_window_days). Before 2026-12: one day more.",
        "count",
    ),
    Column(
        "alive_customers",
        pl.Int64(),
        "Customers whose customer_churn.churn_probability is below 0.5 (risk bands low and "
        "medium; on the churn basis: 1 - P(alive) of the model, or recency and rhythm when the "
        "model cannot rank churn); null without any probability. Before 2026-12: p_alive >= "
        "0.5 of the model, whatever the basis (100% on a collapsed fit).",
        "count",
        True,
    ),
    Column(
        "retention_rate",
        pl.Float64(),
        "Period retention: of the customers who bought in the previous window (the "
        "active_window_days before this one), the share who bought in this one "
        "(retained_customers / previous_active_customers); null when nobody bought in the "
        "previous window. Before 2026-12: a stock (customers acquired before the window with a "
        "purchase in it / all of them).",
        "ratio",
        True,
    ),
    Column(
        "churn_rate",
        pl.Float64(),
        "Period churn = 1 - retention_rate: of the customers who bought in the previous window, "
        "the share who did not buy in this one (per active_window_days). Before 2026-12: the "
        "share of all customers acquired before the window with no purchase in it.",
        "ratio",
        True,
    ),
    Column(
        "arpu",
        pl.Float64(),
        "Net revenue in the window / active_customers (per window).",
        "currency units",
        True,
    ),
    Column(
        "aov",
        pl.Float64(),
        "Purchase amounts in the window / purchase transactions in the window.",
        "currency units",
        True,
    ),
    Column(
        "purchase_frequency",
        pl.Float64(),
        "Purchase transactions in the window / active_customers.",
        "orders per customer per window",
        True,
    ),
    Column(
        "lifespan_days",
        pl.Float64(),
        "active_window_days / churn_rate (expected lifetime); null when churn_rate is 0 or null.",
        "days",
        True,
    ),
    Column(
        "formula_clv_aov",
        pl.Float64(),
        "Seed formula AOV x purchase_frequency x lifespan in windows (1 / churn_rate): revenue "
        "per customer over an expected lifetime, undiscounted, no margin, no horizon.",
        "currency units",
        True,
    ),
    Column(
        "formula_clv_arpu",
        pl.Float64(),
        "Seed formula ARPU x gross_margin / churn_rate: margin per customer over an expected "
        "lifetime (includes the current window), undiscounted, no horizon.",
        "currency units",
        True,
    ),
    Column(
        "avg_formula_clv",
        pl.Float64(),
        "Mean customer_clv.formula_clv: the retention formula over the model's horizon and "
        "discounting (comparable with avg_predicted_clv).",
        "currency units",
        True,
    ),
    Column(
        "avg_historic_clv", pl.Float64(), "Mean customer_clv.historic_clv.", "currency units", True
    ),
    Column(
        "avg_predicted_clv",
        pl.Float64(),
        "Mean model predicted_clv; null without a model.",
        "currency units",
        True,
    ),
    Column(
        "median_predicted_clv",
        pl.Float64(),
        "Median model predicted_clv; null without a model.",
        "currency units",
        True,
    ),
    Column(
        "top_tier_revenue_share",
        pl.Float64(),
        "Share of net revenue to date from customers in the top value tier(s) (platinum).",
        "ratio",
        True,
    ),
)

KPI_NAMES = tuple(c.name for c in KPI_COLUMNS)

#: Inputs and units of the KPI row (no _change columns), at the end of the table.
KPI_INPUTS = (
    Column(
        "previous_active_customers",
        pl.Int64(),
        "Customers with a purchase in the previous window (the denominator of retention_rate).",
        "count",
        True,
    ),
    Column(
        "retained_customers",
        pl.Int64(),
        "Customers with a purchase in both the previous window and this one.",
        "count",
        True,
    ),
    Column(
        "net_revenue_window",
        pl.Float64(),
        "Net revenue (purchases + refunds) in this window: arpu x active_customers.",
        "currency units",
        True,
    ),
    Column(
        "horizon_days",
        pl.Float64(),
        "Horizon of predicted_clv and formula_clv (models.horizon_days).",
        "days",
        True,
    ),
    Column(
        "discount_rate",
        pl.Float64(),
        "Discount rate of predicted_clv and formula_clv, per discount_period.",
        "rate",
        True,
    ),
    Column("discount_period", pl.String(), "annual or monthly.", nullable=True),
    Column(
        "gross_margin",
        pl.Float64(),
        "Margin applied to CLV figures; 1.0 = they are revenue (CLV_GROSS_MARGIN not set), "
        "so CLV:CAC compares revenue with CAC.",
        "share",
        True,
    ),
    Column(
        "currency",
        pl.String(),
        "ISO code of the amounts; null when not set (the transactions' currency units).",
        nullable=True,
    ),
)


def _change_columns() -> tuple[Column, ...]:
    out: list[Column] = []
    for c in KPI_COLUMNS:
        out.append(
            Column(
                f"{c.name}_change",
                pl.Float64(),
                f"{c.name} - previous {c.name}; null without a previous snapshot.",
                c.unit,
                True,
            )
        )
        out.append(
            Column(
                f"{c.name}_change_pct",
                pl.Float64(),
                f"100 x {c.name}_change / |previous {c.name}|; null when previous is 0 or null.",
                "percent",
                True,
            )
        )
    return tuple(out)


KPIS = Table(
    "kpis",
    "as_of",
    "One row per snapshot: base KPIs, seed-formula CLV next to model CLV, change vs the previous "
    "snapshot.",
    (
        AS_OF,
        Column(
            "previous_as_of",
            pl.Date(),
            "Snapshot compared with: the latest complete snapshot before as_of (the day before "
            "unless days are missing; see days_since_previous); null when there is none.",
            nullable=True,
        ),
        Column("active_window_days", pl.Int64(), "Window for active / retention.", "days"),
    )
    + KPI_COLUMNS
    + _change_columns()
    + (
        Column(
            "days_since_previous",
            pl.Int64(),
            "as_of - previous_as_of in days: the period the _change columns span (1 = the day "
            "before); null without a previous snapshot.",
            "days",
            True,
        ),
    )
    + KPI_INPUTS,
)

SEGMENT_TABLES: dict[str, Table] = {
    t.name: t
    for t in (CUSTOMER_SEGMENTS, CUSTOMER_CHURN, SEGMENT_MIGRATION, COHORTS, UNIT_ECONOMICS, KPIS)
}
