use super::*;

fn spilling(n: usize) -> Rows {
    Rows::spilling(Some(SpillConfig {
        resident_rows: n,
        dir: None,
    }))
}

fn row(i: usize) -> Vec<Value> {
    vec![
        Value::String(format!("ord_{i}")),
        Value::Null,
        Value::from(i as u64),
        Value::from(-(i as i64) - 1),
        serde_json::json!(i as f64 + 0.1),
        Value::Bool(i.is_multiple_of(2)),
        Value::String("é".repeat(i % 5)),
    ]
}

fn write(rows: &mut Rows, i: usize, cells: Vec<Value>) {
    let r = rows.get_mut(i);
    r.clear();
    r.extend(cells);
    rows.after_write();
}

#[test]
fn every_cell_kind_comes_back_as_written() {
    let cells = vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        serde_json::json!(-0.000_123_456_789_012_345_67),
        serde_json::json!(1e300),
        Value::String(String::new()),
        Value::String("a\u{0}b 💸".into()),
    ];
    let mut buf = Vec::new();
    encode(&cells, &mut buf);
    assert_eq!(decode(&buf, usize::MAX).unwrap(), cells);
    assert_eq!(decode(&[], usize::MAX).unwrap(), Vec::<Value>::new());
    for max in 0..cells.len() {
        assert_eq!(decode(&buf, max).unwrap(), cells[..max], "the first {max}");
    }
}

#[test]
fn a_cut_or_unknown_record_is_an_error_not_a_wrong_cell() {
    let mut buf = Vec::new();
    encode(
        &[Value::String("abcdef".into()), Value::from(7u64)],
        &mut buf,
    );
    for cut in 1..buf.len() {
        if let Ok(cells) = decode(&buf[..cut], usize::MAX) {
            // Only a cut at a cell boundary decodes, and then to a prefix of the row.
            assert_eq!(cells, vec![Value::String("abcdef".into())], "cut at {cut}");
        }
    }
    assert!(decode(&[9], usize::MAX).is_err());
}

#[test]
fn past_the_limit_the_first_rows_go_to_the_file_and_read_back() {
    let mut rows = spilling(10);
    for i in 0..100 {
        write(&mut rows, i, row(i));
    }
    assert_eq!(rows.len(), 100);
    let spilled = rows.in_file();
    assert!(
        (85..=90).contains(&spilled),
        "between 10 and 15 rows stay in memory, {spilled} spilled"
    );
    for i in 0..100 {
        assert_eq!(rows.get(i).unwrap().as_ref(), row(i).as_slice(), "row {i}");
        let first = rows.get_upto(i, 2).unwrap();
        assert_eq!(first[..2], row(i)[..2], "row {i}'s first two");
    }
    // The first rows are the ones in the file.
    assert!(matches!(rows.rows[0], Row::Spilled { .. }));
    assert!(matches!(rows.rows[99], Row::Here(_)));
    let counted = (rows.rows.iter())
        .filter(|r| matches!(r, Row::Spilled { .. }))
        .count();
    assert_eq!(counted, spilled);
}

#[test]
fn a_row_changed_after_it_went_to_the_file_keeps_the_change() {
    let mut rows = spilling(4);
    for i in 0..40 {
        write(&mut rows, i, row(i));
    }
    assert!(matches!(rows.rows[3], Row::Spilled { .. }));
    rows.get_mut(3)[1] = Value::String("refunded".into());
    rows.after_write();
    // Spilled again, with the change.
    for i in 40..60 {
        write(&mut rows, i, row(i));
    }
    assert!(matches!(rows.rows[3], Row::Spilled { .. }));
    let counted = (rows.rows.iter())
        .filter(|r| matches!(r, Row::Spilled { .. }))
        .count();
    assert_eq!(
        rows.in_file(),
        counted,
        "a row read back for a change is no longer counted"
    );
    let mut want = row(3);
    want[1] = Value::String("refunded".into());
    assert_eq!(rows.get(3).unwrap().as_ref(), want.as_slice());
    for i in (0..60).filter(|i| *i != 3) {
        assert_eq!(rows.get(i).unwrap().as_ref(), row(i).as_slice(), "row {i}");
    }
}

#[test]
fn rows_inserted_before_spilled_ones_move_them_down_intact() {
    let mut rows = spilling(3);
    for i in 0..20 {
        write(&mut rows, i, row(i));
    }
    rows.insert_empty(5, 2);
    assert_eq!(rows.len(), 22);
    assert!(rows.get(5).unwrap().is_empty() && rows.get(6).unwrap().is_empty());
    write(&mut rows, 6, vec![Value::String("new".into())]);
    for i in 0..5 {
        assert_eq!(rows.get(i).unwrap().as_ref(), row(i).as_slice());
    }
    for i in 5..20 {
        assert_eq!(rows.get(i + 2).unwrap().as_ref(), row(i).as_slice());
    }
    assert_eq!(rows.get(6).unwrap()[0], Value::String("new".into()));
}

#[test]
fn a_clone_shares_the_file_without_overwriting_the_original() {
    let mut a = spilling(2);
    for i in 0..10 {
        write(&mut a, i, row(i));
    }
    let mut b = a.clone();
    for i in 10..30 {
        write(&mut a, i, row(i));
        write(&mut b, i, row(i + 100));
    }
    for i in 0..30 {
        assert_eq!(a.get(i).unwrap().as_ref(), row(i).as_slice(), "a {i}");
        let want = if i < 10 { row(i) } else { row(i + 100) };
        assert_eq!(b.get(i).unwrap().as_ref(), want.as_slice(), "b {i}");
    }
}

#[test]
fn without_a_limit_nothing_is_written() {
    let mut rows = Rows::spilling(None);
    for i in 0..50 {
        write(&mut rows, i, row(i));
    }
    assert_eq!(rows.in_file(), 0);
}

#[test]
fn a_file_that_cannot_be_made_keeps_the_rows_in_memory() {
    let mut rows = Rows::spilling(Some(SpillConfig {
        resident_rows: 2,
        dir: Some("/nonexistent/sheets-sandbox-spill".into()),
    }));
    for i in 0..20 {
        write(&mut rows, i, row(i));
    }
    assert_eq!(rows.in_file(), 0);
    for i in 0..20 {
        assert_eq!(rows.get(i).unwrap().as_ref(), row(i).as_slice());
    }
}

#[test]
fn debug_shows_where_the_file_is_not_its_bytes() {
    let mut rows = spilling(1);
    for i in 0..10 {
        write(
            &mut rows,
            i,
            vec![Value::String(format!("secret-cell-{i}"))],
        );
    }
    let _ = rows.get(0);
    let file = rows.spill.as_ref().unwrap().file.as_ref().unwrap();
    let shown = format!("{:?}", file.lock().unwrap());
    assert!(shown.contains("block_len"), "{shown}");
    assert!(
        !shown.contains("115, 101, 99"),
        "no bytes of the block: {shown}"
    );
}

#[test]
fn rows_read_backwards_and_rows_longer_than_a_block_come_back_whole() {
    let mut rows = spilling(1);
    let big = |i: usize| vec![Value::String(format!("{i}").repeat(70 * 1024))];
    for i in 0..400 {
        write(&mut rows, i, if i % 100 == 50 { big(i) } else { row(i) });
    }
    assert!(rows.in_file() >= 398, "{}", rows.in_file());
    for i in (0..400).rev() {
        let want = if i % 100 == 50 { big(i) } else { row(i) };
        assert_eq!(rows.get(i).unwrap().as_ref(), want.as_slice(), "row {i}");
    }
    for i in 0..400 {
        let want = if i % 100 == 50 { big(i) } else { row(i) };
        let got = rows.get_upto(i, 1).unwrap();
        // A row in the file is decoded to its first cell; one in memory comes whole.
        assert_eq!(&got[..1], &want[..1], "row {i}");
        assert!(got.len() == 1 || got.as_ref() == want.as_slice(), "row {i}");
    }
}
