from webapp.app import main

main()
