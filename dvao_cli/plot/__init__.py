"""`dvao plot`: figures from a log, an analyze folder, a train run or a comparison."""
